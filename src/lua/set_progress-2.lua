--[[
  Store the progress a running job reports, only if the job is active with the
  same lease token (fencing: a stale worker cannot overwrite a newer attempt's
  progress). The progress key outlives the attempt: it is kept across retries
  and after the job finishes, and deleted with the job.

  KEYS, one group of 2 per queue to look in (several groups only outside Redis
  Cluster; the first group holding the job wins):
    1 <prefix>:{q}:j:<id>  2 <prefix>:{q}:p:<id>

  ARGV:
    1 token: the lease token of the claim reporting progress
    2 progress: opaque bytes
    3 events: '1' ('c' in Cluster) to publish a `progress` event (see _events)

  Returns: 1 if stored, 0 if the job is unknown, not active or the token is stale.
]]
-- @include _common

local GROUP = 2
local lease_token = ARGV[1]
for g = 0, math.floor(#KEYS / GROUP) - 1 do
  local jk = KEYS[g * GROUP + 1]
  local rec = redis.call('GET', jk)
  if rec then
    -- As numbers (fields_of): parse() would format every field, per report.
    local state, attempt, max_attempts, token, score, enqueued_at, run_at, started_at, finished_at,
      lease_until, lease_batch, mask, nonce, ack_nonce, unique_key, seq = fields_of(rec)
    if state ~= V1.state.ACTIVE or token ~= tonumber(lease_token) then return 0 end
    redis.call('SET', KEYS[g * GROUP + 2], ARGV[2])
    if ARGV[3] and ARGV[3] ~= '' then
      local base = base_of(jk)
      events_on(ARGV[3], now_time())
      event(base, 'progress', string.sub(jk, #base + 3), task_of(base, string.sub(jk, #base + 3)))
      events_publish()
    end
    if mask % (2 * V1.bit.progress) < V1.bit.progress then
      -- Flagged once, so the succeeded retention index knows to delete the key.
      redis.call('SET', jk, pack_record(state, attempt, max_attempts, token, score, enqueued_at, run_at, started_at,
        finished_at, lease_until, lease_batch, mask + V1.bit.progress, nonce, ack_nonce, unique_key, seq))
    end
    return 1
  end
end
return 0
