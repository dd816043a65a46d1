--[[
  Throughput history (ack_many(..., history=)): the rows of an ack flush
  added to the current minute and hour (Redis time). Its keys have a hash tag
  of their own, `{~history}` (no queue name starts with `~`), one Cluster slot:

    <prefix>:{~history}:m         ZSET  the minutes stored: score and member the minute's start
    <prefix>:{~history}:m:<start> HASH  one minute: "<queue>\t<task>\t<outcome>\t<what>" -> value,
                                        what: n (runs), s (run-time sum, seconds), b<i> (histogram
                                        bucket i, 0-based; only buckets that counted something)
    <prefix>:{~history}:h, h:<start>  the same per hour

  Retention: when a minute (hour) begins, the points older than its keep are
  dropped, at most HISTORY_TRIM per write: bounded without a sweeper.
]]

local HISTORY_TRIM = 20

-- Add the rows of `packed` (msgpack {minutes keep, hours keep, {row, ...}}, a
-- row {queue, task, outcome, runs, runtime_sum, {bucket counts}}) to the
-- minute and hour of `now`. `minutes`, `hours`: the index ZSETs above.
local function history_add(minutes, hours, packed, now)
  local h = cmsgpack.unpack(packed)
  local rows = h[3]
  if not rows or #rows == 0 then return end
  local series = {{minutes, 60, tonumber(h[1]) or 86400}, {hours, 3600, tonumber(h[2]) or 2592000}}
  for s = 1, 2 do
    local index, step, keep = series[s][1], series[s][2], series[s][3]
    local start = now - now % step
    local starts = string.format('%d', start)
    local key = index .. ':' .. starts
    if redis.call('ZADD', index, 'NX', starts, starts) == 1 then
      local old = redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. string.format('%d', now - keep), 'LIMIT', 0, HISTORY_TRIM)
      if #old > 0 then
        local keys = {}
        for i = 1, #old do keys[i] = index .. ':' .. old[i] end
        redis.call('DEL', unpack(keys))
        redis.call('ZREM', index, unpack(old))
      end
    end
    for i = 1, #rows do
      local row = rows[i]
      local field = row[1] .. '\t' .. row[2] .. '\t' .. string.format('%d', row[3]) .. '\t'
      redis.call('HINCRBY', key, field .. 'n', row[4])
      redis.call('HINCRBYFLOAT', key, field .. 's', string.format('%.17g', row[5]))
      local buckets = row[6]
      for b = 1, #buckets do
        if buckets[b] ~= 0 then redis.call('HINCRBY', key, field .. 'b' .. (b - 1), buckets[b]) end
      end
    end
  end
end
