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
    5 + g: the acks of group g (redis/connection.py pack_acks), a msgpack
      stream: their count, the width w of a row, 1 if some job is named twice
      among them (else 0), then each ack's row: w = 5
      id, token, kind (0 SUCCEED, 1 RETRY, 2 DEAD, 3 RELEASE), payload or nil,
      delay (seconds); when all are SUCCEED, w = 3 id, token, payload or nil,
      or w = 2 id, token when none has a payload (a plain batch).

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
-- As layout 1 stores them: the time the text says, the nonce's bytes.
local now6 = tonumber(nows)
local call_raw, call_packed = nonce_raw(call_nonce)
local call_bit = call_packed and V1.bit.ack_nonce or 0
local KINDS = {[0] = 'succeeded', [1] = 'failed', [2] = 'dead', [3] = 'released'}
-- A succeeded record's bytes 26 to 49 (lease_until 0, lease_batch 0,
-- finished_at now), the same for every job of the call; its first four
-- bytes per flag mask (see ack_group).
local finish_mid = struct.pack('>dI8d', 0, 0, now6)
local heads = {}

-- A group's acks (see ARGV): a table whose [1] is an offset and whose rows of
-- w values start at [2], their count, w and whether an id repeats. Read as
-- enqueue's read_jobs reads its jobs: in parts of whole rows that fit Lua's C
-- stack (7,000 values at most), each collected by one presized table
-- constructor; a second part and later ones (past 3,500 plain acks) are
-- copied onto the first.
local function read_acks(packed)
  local head = {cmsgpack.unpack_limit(packed, 3, 0)}
  local c, w, repeats = head[2], head[3], head[4] == 1
  if c == 0 then return {}, 0, w, repeats end
  local rows = math.floor(7000 / w)
  local acks = {cmsgpack.unpack_limit(packed, math.min(c, rows) * w, head[1])}
  local n, left, off = 1 + math.min(c, rows) * w, c - rows, acks[1]
  while left > 0 do
    local k = math.min(left, rows) * w
    local part = {cmsgpack.unpack_limit(packed, k, off)}
    off = part[1]
    for j = 2, k + 1 do acks[n + j - 1] = part[j] end
    n, left = n + k, left - rows
  end
  return acks, c, w, repeats
end

local out = {}
-- One group's acks (a function: the main chunk's locals, with _common's, are
-- near Lua's limit of 200).
local function ack_group(g)
  local k = lead + (g - 1) * GROUP
  local leases, leasecount, prio, retry = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local succeeded, dead, unique, seqkey, wakekey = KEYS[k + 5], KEYS[k + 6], KEYS[k + 7], KEYS[k + 8], KEYS[k + 9]
  local held = KEYS[k + 10]
  local holding = 0
  local base = base_of(leases)
  local N_ACTIVE, N_SUCCEEDED, N_DEAD, N_QUEUED, N_RETRY_PENDING =
    V1.state.ACTIVE, V1.state.SUCCEEDED, V1.state.DEAD, V1.state.QUEUED, V1.state.RETRY_PENDING
  local V1_VERSION, LEASED, BITS = V1.version, V1.leased, V1.bit
  -- Ack i's value F of its row (1-based) is acks[o + F], o = 1 + w * (i - 1):
  -- no table per ack to build and collect.
  local acks, c, w, repeats = read_acks(ARGV[g + 5])
  local keys = {}
  for i = 1, c do keys[i] = base .. 'j:' .. acks[w * i - w + 2] end
  local records = mget(keys)
  local metas = nil
  if events_for(base) then
    local tkeys = {}
    for i = 1, c do tkeys[i] = base .. 't:' .. acks[w * i - w + 2] end
    metas = mget(tkeys)
  end

  local writes, doomed, released = {}, {}, {}
  local nwrites = 0
  local pusher = ready_pusher(prio, base)
  local requeued, retry_add, succeeded_add, dead_add, gone = 0, {}, {}, {}, {}
  local nsucceeded, ngone = 0, 0
  -- The jobs applied (or found applied by this call before), when the client
  -- says a job is named twice: a table of the ids costs ~500 instructions
  -- per job, which a batch of distinct ids (the rule) need not pay.
  local seen = repeats and {} or nil
  local settled = {}
  local o = 1 - w
  for i = 1, c do
    o = o + w
    local id, ack_token = acks[o + 1], acks[o + 2]
    local kind, payload = 0, nil
    if w == 5 then
      kind, payload = acks[o + 3], acks[o + 4]
    elseif w == 3 then
      payload = acks[o + 3]
    end
    local rec = records[i]
    -- A layout 1 record: its leading fields (through lease_batch), those a
    -- finish reads, and the lengths that say whether it is whole; the others
    -- are read where needed, or carried over as they are. A text record (an
    -- older fastjobs'): all its fields (fields_of), rewritten in layout 1.
    local v, state, mask, al, nl, ul, attempt, token, started_at, lease_until, lease_batch
    local size = rec and #rec or 0
    if size >= 81 then
      v, state, mask, al, nl, ul, attempt, token, started_at, lease_until, lease_batch = struct.unpack(LEASED, rec)
    end
    local max_attempts, score, enqueued_at, run_at, finished_at, nonce, ack_nonce, unique_key, seq
    if v ~= V1_VERSION or size ~= 81 + al + nl + ul then
      -- Text, or unreadable (missing, a length that does not add up): state nil.
      state, attempt, max_attempts, token, score, enqueued_at, run_at, started_at, finished_at, lease_until,
        lease_batch, mask, nonce, ack_nonce, unique_key, seq = fields_of(v ~= V1_VERSION and rec or nil)
    end
    if seen and seen[id] then
      out[#out + 1] = 0
    elseif state ~= N_ACTIVE or token ~= ack_token then
      -- Stale, unless this very call applied it before (lost reply, retried).
      if state and (ack_nonce or string.sub(rec, 74, 73 + al)) == call_raw and mask - mask % BITS.ack_nonce == call_bit
          and token == ack_token then
        if seen then seen[id] = true end
        out[#out + 1] = 1
      else
        out[#out + 1] = 0
      end
    else
      if seen then seen[id] = true end
      out[#out + 1] = 1
      released[lease_batch] = (released[lease_batch] or 0) + 1
      if metas then event(base, KINDS[kind] or 'released', id, task_in(metas[i])) end
      local flagged = mask % BITS.all
      if flagged ~= 0 then
        -- Flagged jobs only: a plain one pays this one comparison.
        if flagged >= BITS.limited then limit_release(base, id, nows) end
        if flagged % BITS.limited >= BITS.dependants and (kind == 0 or kind == 2) then
          settled[#settled + 1] = id
          settled[#settled + 1] = kind == 2
        end
      end
      -- The ack's nonce replaces the last one; the other bits stay.
      local acked_mask = mask % BITS.ack_nonce + call_bit
      if kind ~= 0 and not nonce then
        -- The other outcomes rewrite more of the record: all its fields.
        local _
        _, _, max_attempts, _, score, enqueued_at, run_at, _, finished_at, _, _, _, nonce, ack_nonce, unique_key,
          seq = fields_of(rec)
      end
      if kind == 0 then
        ngone = ngone + 1
        gone[ngone] = id
        if not nonce and ul > 0 then unique_key = string.sub(rec, 74 + al + nl, size - 8) end
        if unique_key and unique_key ~= '' and unique_succeeded(unique, held, base, unique_key, id, now) then
          holding = holding + 1
        end
        if result_ttl > 0 then
          nwrites = nwrites + 2
          writes[nwrites - 1] = keys[i]
          if nonce then
            writes[nwrites] = pack_record(N_SUCCEEDED, attempt, max_attempts, token, score, enqueued_at, run_at, started_at,
              now6, 0, 0, acked_mask, nonce, call_raw, unique_key, seq)
          else
            -- Version, state, flags and the ack nonce's length (per mask),
            -- nl to started_at as they are, the lease cleared and finished_at
            -- (per call), max_attempts to run_at as they are, the ack's
            -- nonce, the rest (nonce, unique_key, seq) as it is: by bytes, no
            -- struct.pack of the leading fields (~2,000 instructions per job).
            local head = heads[acked_mask]
            if not head then
              head = string.char(V1_VERSION, N_SUCCEEDED, acked_mask, #call_raw)
              heads[acked_mask] = head
            end
            writes[nwrites] = head .. string.sub(rec, 5, 25) .. finish_mid .. string.sub(rec, 50, 73) .. call_raw
              .. string.sub(rec, 74 + al)
          end
          if payload then
            nwrites = nwrites + 2
            writes[nwrites - 1] = base .. 'r:' .. id
            writes[nwrites] = payload
          end
          nsucceeded = nsucceeded + 2
          succeeded_add[nsucceeded - 1] = nows
          succeeded_add[nsucceeded] = id
        else
          add_job_keys(doomed, base, id, flags_text(mask))
        end
      elseif kind == 2 then
        ngone = ngone + 1
        gone[ngone] = id
        release_unique(unique, unique_key, id)
        if dead_ttl > 0 then
          if payload then redis.call('RPUSH', base .. 'e:' .. id, payload) end
          nwrites = nwrites + 2
          writes[nwrites - 1] = keys[i]
          -- with the errors flag (see with_errors)
          if acked_mask % 2 == 0 then acked_mask = acked_mask + BITS.errors end
          writes[nwrites] = pack_record(N_DEAD, attempt, max_attempts, token, score, enqueued_at, run_at, started_at,
            now6, 0, 0, acked_mask, nonce, call_raw, unique_key, seq)
          dead_add[#dead_add + 1] = nows
          dead_add[#dead_add + 1] = id
        else
          add_job_keys(doomed, base, id, flags_text(mask))
        end
      else
        -- RETRY and RELEASE push the job again: a new position, like a fresh push.
        local seq_n = redis.call('INCR', seqkey)
        local seq_s, score_s = fmt_seq(seq_n), int_str(score)
        nwrites = nwrites + 2
        writes[nwrites - 1] = keys[i]
        if kind == 3 then
          writes[nwrites] = pack_record(N_QUEUED, attempt - 1, max_attempts, token, score, enqueued_at, run_at, started_at,
            finished_at, 0, 0, acked_mask, nonce, call_raw, unique_key, seq_n)
          pusher.push(score_s, seq_s .. id)
          requeued = requeued + 1
        else
          if payload then
            redis.call('RPUSH', base .. 'e:' .. id, payload)
            if acked_mask % 2 == 0 then acked_mask = acked_mask + BITS.errors end
          end
          local delay = acks[o + 5] or 0
          if delay > 0 then
            local due = fmt_time(now + delay)
            writes[nwrites] = pack_record(N_RETRY_PENDING, attempt, max_attempts, token, score, enqueued_at, tonumber(due),
              started_at, finished_at, 0, 0, acked_mask, nonce, call_raw, unique_key, seq_n)
            retry_add[#retry_add + 1] = due
            retry_add[#retry_add + 1] = seq_s .. id
          else
            writes[nwrites] = pack_record(N_QUEUED, attempt, max_attempts, token, score, enqueued_at, now6, started_at,
              finished_at, 0, 0, acked_mask, nonce, call_raw, unique_key, seq_n)
            pusher.push(score_s, seq_s .. id)
            requeued = requeued + 1
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
    lease_release(leases, leasecount, base, batch > 0 and int_str(batch) or '', count)
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
for g = 1, math.floor((#KEYS - lead) / GROUP) do ack_group(g) end
events_publish()
return out
