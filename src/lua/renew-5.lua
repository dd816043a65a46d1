--[[
  Extend leases, each only if its job is active with the same lease token. The
  renewed jobs of one call move to a new lease batch per lease length.

  With a beat, the worker's heartbeat is applied in the same call (see
  worker_beat in _common.lua), its two keys first. On Redis Cluster they are
  another slot, so the beat is a call of its own there, with no queue group;
  never one beat per queue.

  KEYS: with a beat, first
    1 <prefix>:{~workers}:beats  2 <prefix>:{~workers}:w:<worker id>
  then one group of 3 per queue (several groups only outside Redis Cluster):
    3 <prefix>:{q}:leases  4 <prefix>:{q}:leasecount  5 <prefix>:{q}:seq
  (without a beat, the groups start at KEYS[1])

  ARGV:
    1: the beat, msgpack {worker id, ttl seconds, msgpack array of running job
       ids}, or '' for none
    1 + g: the leases of group g, msgpack: an array of {id, token, seconds} (the
       new lease runs from now)

  Returns: a flat array of 1 (extended) / 0 (stale), one per lease, group by group.
    A job named again in the same group after a renewal of it applied is
    answered 0 (a repeat would put it twice in the new batch).
]]
-- @include _common

local GROUP = 3
local now = now_time()
local out = {}
local first = 0
if ARGV[1] ~= '' then
  worker_beat(KEYS[1], KEYS[2], ARGV[1], now)
  first = 2
end
for g = 1, math.floor((#KEYS - first) / GROUP) do
  local k = first + (g - 1) * GROUP
  local leases, leasecount, seqkey = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local base = base_of(leases)
  local items = cmsgpack.unpack(ARGV[g + 1])
  local keys = {}
  for i = 1, #items do keys[i] = base .. 'j:' .. items[i][1] end
  local records = mget(keys)
  -- One new batch per distinct lease length (usually one).
  local batches, writes, released, seen = {}, {}, {}, {}
  for i = 1, #items do
    local item = items[i]
    local state, attempt, max_attempts, token, score, enqueued_at, run_at, started_at, finished_at,
      lease_until, lease_batch, mask, nonce, ack_nonce, unique_key, seq = fields_of(records[i])
    if state == V1.state.ACTIVE and token == item[2] and not seen[item[1]] then
      seen[item[1]] = true
      local nb = batches[item[3]]
      if not nb then
        local id = redis.call('INCR', seqkey)
        local deadline = fmt_time(now + item[3])
        nb = {id = int_str(id), id_n = id, deadline = deadline, deadline_n = tonumber(deadline), ids = {}}
        batches[item[3]] = nb
      end
      nb.ids[#nb.ids + 1] = item[1]
      released[lease_batch] = (released[lease_batch] or 0) + 1
      writes[#writes + 1] = keys[i]
      writes[#writes + 1] = pack_record(state, attempt, max_attempts, token, score, enqueued_at, run_at, started_at,
        finished_at, nb.deadline_n, nb.id_n, mask, nonce, ack_nonce, unique_key, seq)
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
  end
  call_chunked('MSET', nil, writes)
  for _, nb in pairs(batches) do
    lease_open(leases, leasecount, base, nb.id, nb.ids, nb.deadline)
  end
  for batch, count in pairs(released) do
    lease_release(leases, leasecount, base, batch > 0 and int_str(batch) or '', count)
  end
end
return out
