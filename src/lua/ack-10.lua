--[[
  Apply a batch of acknowledgements, each only if its job is active with the
  same lease token (fencing). Also deletes finished jobs past their retention
  from the front of the retention indexes, a bounded amount per call, so
  memory stays bounded even if cleanup never runs.

  A job that succeeds keeps its unique key for its unique_ttl window (see
  enqueue); dead jobs release theirs at once. A limited job (flag 'l') gives
  back its key's slot whatever the ack; a job with dependants (flag 'd') that
  succeeds or goes dead settles them here, cascading through the ones it
  cancels (keys reached through the queue's base, see _common).

  KEYS, one group of 10 per queue (several groups only outside Redis Cluster),
  after the two history keys <prefix>:{~history}:m and :h when the history argument is set:
    1 <prefix>:{q}:leases     2 <prefix>:{q}:leasecount  3 <prefix>:{q}:prio
    4 <prefix>:{q}:retry      5 <prefix>:{q}:done        6 <prefix>:{q}:dead
    7 <prefix>:{q}:unique     8 <prefix>:{q}:seq         9 <prefix>:{q}:wake
    10 <prefix>:{q}:uniqueheld

  ARGV:
    1 nonce: random per call. A call retried after a lost reply finds the jobs
      it applied marked with it and reports them applied again.
    2 result_ttl: seconds to keep succeeded jobs (0: delete at ack)
    3 dead_ttl: seconds to keep dead jobs (0: delete at once)
    4 events: '1' ('c' in Cluster) to publish succeeded / failed / dead / released events (see _events)
    5 history: '' or the flush's history rows (outside Cluster only), added to
      the current minute and hour (see _history)
    5 + g: the acks of group g, as unpack_rows reads them (see _common): their count,
      then each Ack's fields in a row, {count, id, token, kind (0 SUCCEED, 1 RETRY, 2 DEAD,
      3 RELEASE), payload or nil, delay (seconds), id, ...}

  Returns: a flat array of 1 (applied) / 0 (stale), one per ack, group by group.
    A job named again in the same group after an ack of it applied is answered
    0 (the records are read once, up front: a repeat would apply twice).
]]
-- @include _common
-- @include _history

local GROUP = 10
local call_nonce = ARGV[1]
local result_ttl = tonumber(ARGV[2])
local dead_ttl = tonumber(ARGV[3])
local now = now_time()
local nows = fmt_time(now)
events_on(ARGV[4], now)
local lead = 0
if ARGV[5] ~= '' then
  lead = 2
  history_add(KEYS[1], KEYS[2], ARGV[5], now)
end
-- A finished record's length but for its kept spans and token (see hash_pad).
local finish_fixed = 3 + #nows + #call_nonce
local KINDS = {[0] = 'succeeded', [1] = 'failed', [2] = 'dead', [3] = 'released'}

local out = {}
for g = 1, math.floor((#KEYS - lead) / GROUP) do
  local k = lead + (g - 1) * GROUP
  local leases, leasecount, prio, retry = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local succeeded, dead, unique, seqkey, wakekey = KEYS[k + 5], KEYS[k + 6], KEYS[k + 7], KEYS[k + 8], KEYS[k + 9]
  local held = KEYS[k + 10]
  local holding = 0
  local base = base_of(leases)
  -- {count, id, token, kind, payload, delay, id, ...}: no table per ack to
  -- build and collect (payloads are often nil: hence the count).
  local acks = unpack_rows(ARGV[g + 5])
  local c = acks[1]
  local keys = {}
  for i = 1, c do keys[i] = base .. 'j:' .. acks[5 * i - 3] end
  local records = mget(keys)
  local metas = nil
  if events_for(base) then
    local tkeys = {}
    for i = 1, c do tkeys[i] = base .. 't:' .. acks[5 * i - 3] end
    metas = mget(tkeys)
  end

  local writes, doomed, released = {}, {}, {}
  local nwrites = 0
  local pusher = ready_pusher(prio, base)
  local requeued, retry_add, succeeded_add, dead_add, gone = 0, {}, {}, {}, {}
  local nsucceeded, ngone = 0, 0
  local seen = {}
  local settled = {}
  for i = 1, c do
    local o = 5 * i - 4
    local id, ack_token, kind, payload = acks[o + 1], acks[o + 2], acks[o + 3], acks[o + 4]
    local rec = records[i]
    -- Only the fields a finish reads or rewrites (see FINISH_SPANS); the
    -- other outcomes parse the whole record below.
    local state, kept1, token, kept2, seq_end, kept3, ack_nonce, lease_batch, tail, flags
    if not rec then
      -- Missing: stale.
    elseif HASH_SAMPLES then
      state, kept1, token, kept2, seq_end, kept3, ack_nonce, lease_batch, tail, flags = string.match(rec, FINISH_SPANS_AT)
    else
      state, kept1, token, kept2, kept3, ack_nonce, lease_batch, tail, flags = string.match(rec, FINISH_SPANS)
    end
    if seen[id] then
      out[#out + 1] = 0
    elseif state ~= ACTIVE or number_of(token) ~= ack_token then
      -- Stale, unless this very call applied it before (lost reply, retried).
      if state and ack_nonce == call_nonce and number_of(token) == ack_token then
        seen[id] = true
        out[#out + 1] = 1
      else
        out[#out + 1] = 0
      end
    else
      seen[id] = true
      out[#out + 1] = 1
      released[lease_batch] = (released[lease_batch] or 0) + 1
      if metas then event(base, KINDS[kind] or 'released', id, task_in(metas[i])) end
      if flags ~= '' then
        -- Flagged jobs only: a plain one pays this one comparison.
        if has_flag(flags, 'l') then limit_release(base, id, nows) end
        if has_flag(flags, 'd') and (kind == 0 or kind == 2) then
          settled[#settled + 1] = id
          settled[#settled + 1] = kind == 2
        end
      end
      if kind == 0 then
        ngone = ngone + 1
        gone[ngone] = id
        -- tail is '|<flags>|<unique key>'.
        local unique_key = #tail > #flags + 2 and string.sub(tail, #flags + 3) or ''
        if unique_succeeded(unique, held, base, unique_key, id, now) then holding = holding + 1 end
        if result_ttl > 0 then
          nwrites = nwrites + 2
          writes[nwrites - 1] = keys[i]
          local pad = ''
          if HASH_SAMPLES then
            -- Its finish time padded so that Lua hashes the seq (see hash_pad);
            -- seq ends where it did: nothing before it changes length.
            local size = finish_fixed + #kept1 + #token + #kept2 + #kept3 + #tail
            pad = PADS[size * 65536 + seq_end] or hash_pad(size, seq_end)
          end
          writes[nwrites] = SUCCEEDED .. kept1 .. token .. kept2 .. nows .. pad .. kept3 .. call_nonce .. '||' .. tail
          if payload then
            nwrites = nwrites + 2
            writes[nwrites - 1] = base .. 'r:' .. id
            writes[nwrites] = payload
          end
          nsucceeded = nsucceeded + 2
          succeeded_add[nsucceeded - 1] = nows
          succeeded_add[nsucceeded] = id
        else
          add_job_keys(doomed, base, id, flags)
        end
      else
        local _, attempt, max_attempts, _, score, seq, enqueued_at, run_at, started_at, finished_at, nonce,
          _, _, _, _, unique_key = parse(rec)
        ngone = ngone + 1
        if kind == 2 then
          gone[ngone] = id
          release_unique(unique, unique_key, id)
          if dead_ttl > 0 then
            if payload then redis.call('RPUSH', base .. 'e:' .. id, payload) end
            nwrites = nwrites + 2
            writes[nwrites - 1] = keys[i]
            writes[nwrites] = record(DEAD, attempt, max_attempts, token, score, seq, enqueued_at, run_at, started_at, nows, nonce, call_nonce, '', '', with_errors(flags), unique_key)
            dead_add[#dead_add + 1] = nows
            dead_add[#dead_add + 1] = id
          else
            add_job_keys(doomed, base, id, flags)
          end
        else
          ngone = ngone - 1
          -- RETRY and RELEASE push the job again: a new position, like a fresh push.
          seq = fmt_seq(redis.call('INCR', seqkey))
          if not tonumber(score) then score = '0' end
          nwrites = nwrites + 2
          writes[nwrites - 1] = keys[i]
          if kind == 3 then
            local released_attempt = int_str((tonumber(attempt) or 1) - 1)
            writes[nwrites] = record(QUEUED, released_attempt, max_attempts, token, score, seq, enqueued_at, run_at, started_at, finished_at, nonce, call_nonce, '', '', flags, unique_key)
            pusher.push(score, seq .. id)
            requeued = requeued + 1
          else
            if payload then
              redis.call('RPUSH', base .. 'e:' .. id, payload)
              flags = with_errors(flags)
            end
            local delay = acks[o + 5] or 0
            if delay > 0 then
              local due = fmt_time(now + delay)
              writes[nwrites] = record(RETRY_PENDING, attempt, max_attempts, token, score, seq, enqueued_at, due, started_at, finished_at, nonce, call_nonce, '', '', flags, unique_key)
              retry_add[#retry_add + 1] = due
              retry_add[#retry_add + 1] = seq .. id
            else
              writes[nwrites] = record(QUEUED, attempt, max_attempts, token, score, seq, enqueued_at, nows, started_at, finished_at, nonce, call_nonce, '', '', flags, unique_key)
              pusher.push(score, seq .. id)
              requeued = requeued + 1
            end
          end
        end
      end
    end
  end

  call_chunked('MSET', nil, writes)
  -- Dependants learn of the outcome in this same call, before the finished
  -- jobs' keys (their dependant lists among them) may go.
  for i = 1, #settled, 2 do deps_settle(base, settled[i], settled[i + 1], now, nows) end
  call_chunked('DEL', nil, doomed)
  for batch, count in pairs(released) do
    lease_release(leases, leasecount, base, batch, count)
  end
  pusher.flush()
  call_chunked('ZADD', retry, retry_add)
  call_chunked('ZREM', base .. 'live', gone)
  if #succeeded_add > 0 then
    call_chunked('ZADD', succeeded, succeeded_add)
    -- Retention as we go: remove a bit more than was added, so a backlog
    -- (after result_ttl was lowered) shrinks too.
    trim_zset(succeeded, base, now - result_ttl, #succeeded_add + 100, SUCCEEDED)
  end
  if #dead_add > 0 then
    call_chunked('ZADD', dead, dead_add)
    trim_zset(dead, base, now - dead_ttl, 2 * #dead_add + 100, DEAD)
  end
  if holding > 0 then
    -- Windows end as others begin: memory stays bounded without cleanup.
    trim_unique_held(unique, held, now, 2 * holding + 100)
  end
  wake(wakekey, requeued + (#retry_add > 0 and 1 or 0))
end
events_publish()
return out
