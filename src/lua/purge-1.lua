--[[
  Delete jobs of one finished state (dead, succeeded or cancelled), in chunks.

  KEYS, one per queue (several only outside Redis Cluster):
    1 <prefix>:{q}:dead, <prefix>:{q}:cancelled (ZSETs) or <prefix>:{q}:succeeded (LIST)

  ARGV:
    1 state: the state the jobs must still be in
    2 limit: most entries handled per key per call

  Returns: {deleted, more}: jobs deleted, and 1 if some keys had more left.
]]
-- @include _common

local state = ARGV[1]
local limit = tonumber(ARGV[2])
local deleted, more = 0, 0
for g = 1, #KEYS do
  local key = KEYS[g]
  local base = base_of(key)
  local is_list = redis.call('TYPE', key)['ok'] == 'list'
  local entries
  if is_list then
    entries = redis.call('LRANGE', key, 0, limit - 1)
  else
    entries = redis.call('ZRANGE', key, 0, limit - 1)
  end
  local n = #entries
  if n > 0 then
    local ids, jkeys = {}, {}
    for i = 1, n do
      ids[i] = is_list and string.match(entries[i], '^[^|]*|[^|]*|(.*)$') or entries[i]
      jkeys[i] = base .. 'j:' .. (ids[i] or '')
    end
    local records = mget(jkeys)
    local keys = {}
    for i = 1, n do
      if ids[i] and parse(records[i]) == state then
        deleted = deleted + 1
        add_job_keys(keys, base, ids[i])
      end
    end
    call_chunked('DEL', nil, keys)
    if is_list then
      redis.call('LTRIM', key, n, -1)
    else
      call_chunked('ZREM', key, entries)
    end
    if n == limit then more = 1 end
  end
end
return {deleted, more}
