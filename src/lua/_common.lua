--[[
  Shared helpers, pasted at load time in place of the line `-- @include _common`
  at the top of every `<op>-<numkeys>.lua` script. Of them a script keeps only
  the top-level definitions it reaches by name (backends/redis/lua_prune.py):
  Lua builds every function and table of its chunk on each call, and pasted
  whole these cost ~170,000 instructions a call. So a snippet holds `local`
  definitions only, and none of them may act (call redis, change a table)
  when it is built.

  Key layout. Every key of one queue shares the hash tag `{<queue>}`, so a
  script that touches one queue touches one Cluster slot:

    <prefix>:{<queue>}:prio       ZSET  the priorities that have a ready list (member and score: -priority)
    <prefix>:{<queue>}:rl:<p>     LIST  ready jobs of score p (= -priority), members <seq><job id>, FIFO
    <prefix>:{<queue>}:ready      ZSET  ready jobs that came back from a delay with their old
                                        position: score p, member <seq><job id>
    <prefix>:{<queue>}:sched      ZSET  scheduled jobs: score due time, member <seq><job id>
    <prefix>:{<queue>}:retry      ZSET  retry-pending jobs: idem
    <prefix>:{<queue>}:leases     ZSET  lease batches (one per claim or renewal call): member batch id,
                                        score its deadline
    <prefix>:{<queue>}:lease:<b>  LIST  the job ids leased by batch b
    <prefix>:{<queue>}:leasecount HASH  batch id -> how many of its jobs are still leased by it
    <prefix>:{<queue>}:done       ZSET  succeeded jobs: score finish time, member job id (retention
                                        and search index; before issue 13 a LIST named `succeeded`)
    <prefix>:{<queue>}:cancelled  ZSET  score finish time, member job id (retention index)
    <prefix>:{<queue>}:dead       ZSET  idem: the dead-letter queue
    <prefix>:{<queue>}:ghosts     SET   members of ready lists whose job was cancelled (skipped at claim)
    <prefix>:{<queue>}:unique     HASH  unique key -> id of the live job holding it, or of the
                                        succeeded job whose uniqueness window holds it
    <prefix>:{<queue>}:uniqueheld ZSET  unique keys held by a succeeded job: score the end of its window
    <prefix>:{<queue>}:seq        STRING counter: enqueue order and lease batch ids
    <prefix>:{<queue>}:wake       LIST  wake-up tokens for idle workers (BLPOP), capped
    <prefix>:{<queue>}:paused     STRING exists while the queue is paused (claim leases nothing from it)
    <prefix>:{<queue>}:live       ZSET  every job not finished (scheduled, queued, active, retry-pending,
                                        waiting): score enqueue time, member job id (the search index
                                        of live jobs: search seeks it by (time, id))
    <prefix>:{<queue>}:j:<id>     STRING the job record (below)
    <prefix>:{<queue>}:t:<id>     STRING the job's task, then its tags, tab-separated (absent for a job
                                        with neither): search filters and events read it, not the body
    <prefix>:{<queue>}:b:<id>     STRING the job body (written once, read at claim)
    <prefix>:{<queue>}:r:<id>     STRING the result, if any
    <prefix>:{<queue>}:e:<id>     LIST  encoded error records, oldest first
    <prefix>:{<queue>}:p:<id>     STRING the latest progress its handler reported (opaque bytes)
    <prefix>:{<queue>}:u:<id>     STRING unique_ttl (seconds) of a job with a unique key and a window
    <prefix>:{<queue>}:waiting    ZSET  jobs waiting on their parents: score enqueue time, member job id
    <prefix>:{<queue>}:d:<id>     STRING a dependant's counts: "mode|pending|failed|delay"
    <prefix>:{<queue>}:dp:<id>    STRING its parent ids as enqueued (msgpack array), read only by get
    <prefix>:{<queue>}:c:<id>     LIST  ids of the jobs waiting on job <id> (gone once it finished)
    <prefix>:{<queue>}:l:<id>     STRING the limit key of a limited job
    <prefix>:{<queue>}:limits     HASH  limit key -> "concurrency|rate|per" (the key's latest enqueue)
    <prefix>:{<queue>}:lactive    HASH  limit key -> how many of its jobs are active
    <prefix>:{<queue>}:lr:<key>   ZSET  lease log of a rate-limited key: score lease time (expires)
    <prefix>:{<queue>}:lq:<key>   ZSET  queued jobs claim parked over their key's limit: score p,
                                        member <seq><job id> (the key's own order)
    <prefix>:{<queue>}:limitwait  ZSET  keys that have parked jobs: score when they may go again
                                        (+inf: when an active job of the key leaves)

  The live worker registry has a hash tag of its own, `{~workers}` (`~` starts
  no queue name, so it never shares a queue's keys), one Cluster slot for all:

    <prefix>:{~workers}:beats     ZSET  worker ids: score when the worker is gone unless it beats
                                        (its last beat + its ttl)
    <prefix>:{~workers}:w:<id>    HASH  one worker: hostname, pid, queues (msgpack), concurrency,
                                        version, started_at, last_seen, ttl, running (msgpack job ids);
                                        expires GONE_KEPT seconds after its ttl ran out

  The dependency and limit keys are not declared by the scripts that reach
  them: they are built from the queue's base, like the job keys (same slot),
  so a plain call passes and touches no more keys than before.

  Order. Ready jobs are served by priority, then by <seq>: a 16-digit
  per-queue sequence number given at every push into the ready state (enqueue,
  release, retry, lease recovery), which a delayed job keeps through its delay.
  A new seq is always the highest, so pushing it at the tail of its priority's
  LIST keeps that list sorted; only a job coming back from a delay carries an
  older seq, and it goes to the `ready` ZSET, which claim merges with the lists
  by (priority, seq). LISTs rather than one ZSET for everything: an enqueue and
  a claim cost an RPUSH and an LPOP per job instead of a skiplist insert and
  delete, about a fifth of the work of the whole job.

  Leases. A claim leases its jobs as one batch: one entry in `leases`, not one
  per job; the job record holds its deadline and batch. Acks only decrement the
  batch's count (and drop the batch at zero); recovery reads the expired
  batches and takes back the jobs still leased by them.

  The job record is one string, its fields in this order (positions: R_*
  below; parse() returns them as strings, record() takes them so):
    state|attempt|max_attempts|token|score|seq|enqueued_at|run_at|started_at|finished_at|nonce|ack_nonce|lease_until|lease_batch|flags|unique_key
  (score is -priority; run_at empty means enqueued_at; flags holds '1' once the
  error list exists, 'p' once the progress key does, 'w' for a job with
  parents (d:<id>), 'd' once a dependant waits on it (c:<id>), 'l' for a
  limited job (l:<id>): so the retention trims can say which keys
  to delete, and the finishing scripts look for dependants or a limit only on
  a flagged job; a plain job's flags are '', and cost them one comparison.)

  Two layouts of those fields. Every script writes layout 1; every reader
  (parse(), fields_of(), state_of(), and records.Record.parse in Python) reads
  both, so a record an older fastjobs stored is read as it always was and
  rewritten in layout 1 by the first script that changes it (no migration).
  * Text (fastjobs before layout 1; read, never written): the fields above
    as text, separated by '|', the unique key last (it may contain '|'); it
    starts with the state digit, '0' to '7'. Times '%.6f', seq 16 digits,
    '' for empty.
  * Layout 1, binary, big-endian: struct format V1.format (struct.pack and
    struct.unpack of Redis' Lua; records.py decodes the same, a test checks).
    A fixed part of 73 bytes, then the strings, then seq:
      B    1, the version (no text record starts with this byte)
      B    state
      B    the flags as bits (1 '1', 2 'p', 4 'w', 8 'd', 16 'l'), and 32 when
           the nonce is hex-packed, 64 when the ack_nonce is (below)
      B    the length of ack_nonce, then B that of nonce,
      I4   that of unique_key
      i4   attempt, token (signed, 4 bytes each)
      d    started_at, lease_until (doubles: the time whose '%.6f' parse()
           gives; 0 for empty)
      I8   lease_batch (0: none)
      d    finished_at
      i4   max_attempts, score (a max_attempts or score beyond +-(2^31-1) is
           stored at that bound)
      d    enqueued_at, run_at
      c0   ack_nonce, nonce, unique_key: their bytes (lengths above). A nonce of
           lowercase hex digits (as fastjobs' clients make them) is stored
           hex-packed: the bytes its digits spell, half its length.
      I8   seq (0: empty), last (below)
    That is 89 bytes for a queued or active plain job (text: ~69 queued,
    ~104 active) and 97 for a succeeded one (text ~119). The fields a lease
    reads and writes come first, then those a finish writes: claim and ack
    read those leading fields with one struct.unpack of a few fields each,
    write the bytes they change (the lease's and a finish's the same for a
    whole call) and carry the rest over as it is (string.sub), where the
    text layout took a Lua pattern over the whole record (~10,000
    instructions per job in claim, and again in ack).
    A record's length is checked against the lengths it gives: one that
    does not add up is unreadable.
    Why seq is last: Lua 5.1 (Redis' Lua) interns every string it makes, and
    before Redis 7.0 hashes a string of length l from only every
    ((l >> 5) + 1)-th byte, counting back from the LAST one, which is always
    hashed. The records one claim or ack writes differ mostly in their seq;
    with its low byte last, consecutive seqs hash apart and a batch's records
    spread over the chains of Lua's string table, instead of sharing one
    where each new record is compared with all the others (~250 comparisons
    per record in a batch of 500: ~6,000 instructions, three times per job
    between claim and ack, before the text records were padded for it).

  Why strings and not a hash per job: every per-job redis.call costs a few
  microseconds of Redis time on its own, so the batch scripts read and write
  the records of a whole batch with one MGET and one MSET. For the same reason
  finished jobs are deleted by trimming the retention indexes in the ack
  script itself (one DEL per batch), not by a key expiry per job: memory stays
  bounded without cleanup as long as jobs finish, and nothing grows when none do.

  Job keys are built here from the queue's base `<prefix>:{<queue>}:` (taken
  from a declared key): they hash to the same slot as the declared keys.
  Times are seconds since the epoch from Redis TIME, with 6 decimals.

  Batches arrive as one msgpack argument per queue (decoded with cmsgpack, C
  code) rather than as thousands of arguments: packing those dominated the
  client's time. Values written back are strings wherever possible: a Lua
  number handed to redis.call is formatted with "%.17g" on every call.
]]

-- The job states (SCHEDULED, QUEUED, ACTIVE, SUCCEEDED, RETRY_PENDING, DEAD,
-- CANCELLED, WAITING) are defined by a prelude generated from fastjobs._core
-- when the scripts are assembled (backends/redis/scripts.py): no state number
-- is written in a .lua file.
-- Redis' Lua unpack() is limited by the C stack (~8000 values): send long
-- argument lists in chunks (an even size keeps ZADD/MSET pairs together).
local CHUNK = 4000
-- @include _events
-- Work done per call on due delayed jobs and expired leases stays bounded;
-- the next call picks up the rest.
local MAINTENANCE_LIMIT = 1000
local LEASE_BATCH_LIMIT = 20
local WAKE_TOKENS = 8
local WAKE_TOKENS_LAST = '7'  -- WAKE_TOKENS - 1, for LTRIM

local RECORD = '^(%d)|(%d*)|(%d*)|(%d*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$'

-- The record's fields in order (the layout above), as parse() returns them
-- and record() takes them. Code that keeps a parsed record as a table,
-- {parse(rec)}, reads it by these positions; the per-job loops of claim, ack
-- and the like take parse()'s values into locals of the same names instead
-- (no table per job). fastjobs.backends.redis.records.Record lists the same
-- fields in the same order (a test checks).
local R_STATE, R_ATTEMPT, R_MAX_ATTEMPTS, R_TOKEN, R_SCORE, R_SEQ, R_ENQUEUED_AT, R_RUN_AT = 1, 2, 3, 4, 5, 6, 7, 8
local R_STARTED_AT, R_FINISHED_AT, R_NONCE, R_ACK_NONCE, R_LEASE_UNTIL, R_LEASE_BATCH, R_FLAGS, R_UNIQUE_KEY =
  9, 10, 11, 12, 13, 14, 15, 16
local R_COUNT = 16

local function now_time()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function fmt_time(t)
  return string.format('%.6f', t)
end

-- Formatting a number is one of the dearest things a script does per job
-- (snprintf: ~0.5-1.5 us), so the per-job ones are memoized per call:
-- attempts, tokens and max_attempts repeat, and consecutive sequence numbers
-- share all but their last two digits.
local INT_STRINGS, SEQ_HIGH, SEQ_LOW = {}, {}, {}

local function int_str(n)
  local s = INT_STRINGS[n]
  if not s then
    s = string.format('%d', n)
    INT_STRINGS[n] = s
  end
  return s
end

-- A number handed to redis.call is formatted with snprintf("%.17g") on every
-- call (~3,000 instructions: a claim on an idle queue spent ~50,000 on the
-- numbers of its maintenance calls). Those calls take strings instead: this
-- one, the same text Redis would make, formatted once per value and call.
local G17_VALUE, G17_TEXT = nil, nil
local function g17(x)
  if x ~= G17_VALUE then G17_VALUE, G17_TEXT = x, string.format('%.17g', x) end
  return G17_TEXT
end

-- 16 digits, zero-padded: members of equal priority sort in seq order.
local function fmt_seq(seq)
  local low = seq % 100
  local high = (seq - low) / 100
  local hs, ls = SEQ_HIGH[high], SEQ_LOW[low]
  if not hs then
    hs = string.format('%014d', high)
    SEQ_HIGH[high] = hs
  end
  if not ls then
    ls = string.format('%02d', low)
    SEQ_LOW[low] = ls
  end
  return hs .. ls
end

-- Whether record flags `flags` hold flag `c` (see the record layout).
local function has_flag(flags, c)
  return flags ~= nil and flags ~= '' and string.find(flags, c, 1, true) ~= nil
end

-- The record flags with the error list's flag added (see the record layout);
-- the other flags are kept.
local function with_errors(flags)
  if not flags or flags == '' then return '1' end
  if string.find(flags, '1', 1, true) then return flags end
  return '1' .. flags
end

-- Job records (the layouts above). fields_of() is the readers' common
-- ground: the fields of either layout as layout 1 holds them, in its order
-- (state, attempt, max_attempts, token, score, enqueued_at, run_at,
-- started_at, finished_at, lease_until, lease_batch: numbers, 0 for empty;
-- flag bits, nonce, ack_nonce: the stored bytes; unique_key; seq: a number),
-- nil if unreadable; renew and promote work on those (pack_record writes
-- them back). The hottest paths read less: claim and ack read and write only
-- a layout 1 record's leading fields (V1.leasing, leased), write the bytes
-- they change and carry the rest over as it is; enqueue packs a new
-- record's head once per call (new_record). parse() and record() speak the fields as strings, formatted
-- as the text layout held them, for the many rarer paths that keep a record
-- as a table ({parse(rec)}, R_*).
-- Layout 1's constants, in one table (see the locals note below): its
-- version byte, struct format, the states as it stores them (numbers, by
-- name: those the hot paths compare or write), and the bits of its flag byte
-- (a bit b of m is set when m % (2 * b) >= b; `all`: the flags are the bits
-- below it). The per-job loops take what they use into locals.
local V1 = {
  version = 1,
  format = '>BBBBBI4i4i4ddI8di4i4ddc0c0c0I8',
  -- Its fixed part (offsets 1 to 73), and the leading fields a lease reads
  -- (through token) and a finish reads (through lease_batch).
  fixed = '>BBBBBI4i4i4ddI8di4i4dd',
  leasing = '>BBBBBI4i4i4',
  leased = '>BBBBBI4i4i4ddI8',
  state = STATE_NUMBERS,
  bit = {errors = 1, progress = 2, waits = 4, dependants = 8, limited = 16, all = 32, nonce = 32, ack_nonce = 64},
}
-- The record helpers, below: their own helpers are local to the block (the
-- main chunk of a script may hold 200 locals, and the scripts with _common
-- come near that).
local fields_of, pack_record, parse, state_of, record, record_of, new_record, flags_text, nonce_raw, v1_fresh
do
  local V1_VERSION, V1_FORMAT, V1_FIXED, BITS = V1.version, V1.format, V1.fixed, V1.bit
  local FLAG_CHARS = {'1', 'p', 'w', 'd', 'l'}  -- bits 1, 2, 4, 8, 16
  local I4_MAX = 2147483647

  -- Per-call memos: flags text <-> bits (flags), nonce text -> stored bytes
  -- (nonce_raw) and back (nonce_text), new records' heads (new_record).
  local V1_MEMO = {flags = {}, nonce_raw = {}, nonce_text = {}, new_heads = {}}

  -- The memos emptied, as a new call starts (call_fresh).
  function v1_fresh() V1_MEMO = {flags = {}, nonce_raw = {}, nonce_text = {}, new_heads = {}} end

  -- The flag bits of flags text (memoized per call).
  local function flags_mask(flags)
    local memo = V1_MEMO.flags
    local m = memo[flags]
    if not m then
      m = 0
      local b = 1
      for i = 1, #FLAG_CHARS do
        if string.find(flags, FLAG_CHARS[i], 1, true) then m = m + b end
        b = b + b
      end
      memo[flags] = m
    end
    return m
  end

  -- The flags text of mask m (its flag bits, in FLAG_CHARS order).
  function flags_text(m)
    m = m % BITS.all
    local memo = V1_MEMO.flags
    local t = memo[m]
    if not t then
      t = ''
      local b = 1
      for i = 1, #FLAG_CHARS do
        if m % (b + b) >= b then t = t .. FLAG_CHARS[i] end
        b = b + b
      end
      memo[m] = t
    end
    return t
  end

  -- A nonce as layout 1 stores it: its bytes, and whether they are hex-packed
  -- (then they differ from the text: half its length). Memoized per call (a
  -- call writes its own nonce into every record), as is the way back.
  function nonce_raw(s)
    local memo = V1_MEMO.nonce_raw
    local raw = memo[s]
    if not raw then
      if s ~= '' and #s % 2 == 0 and #s <= 510 and not string.find(s, '[^0-9a-f]') then
        raw = (string.gsub(s, '..', function(h) return string.char(tonumber(h, 16)) end))
      elseif #s > 255 then
        error('fastjobs: a nonce of more than 255 bytes: ' .. string.sub(s, 1, 40))
      else
        raw = s
      end
      memo[s] = raw
    end
    return raw, raw ~= s
  end

  -- The nonce text of stored bytes `raw` (hex-packed or not).
  local function nonce_text(raw, packed)
    if not packed or raw == '' then return raw end
    local memo = V1_MEMO.nonce_text
    local t = memo[raw]
    if not t then
      t = (string.gsub(raw, '.', function(c) return string.format('%02x', string.byte(c)) end))
      memo[raw] = t
    end
    return t
  end

  -- Numbers of text fields, as layout 1 can hold them: i4 (clamped), u8
  -- (seq, batch: an integer from 0), time (0: empty or unreadable).
  local function i4_of(s)
    local n = tonumber(s)
    if not n or n ~= n then return 0 end
    if n > I4_MAX then return I4_MAX end
    if n < -I4_MAX then return -I4_MAX end
    return n
  end

  local function u8_of(s)
    local n = tonumber(s)
    if not n or n ~= n or n < 0 then return 0 end
    if n > 9007199254740992 then return 9007199254740992 end  -- 2^53: the last integer of a double
    return n
  end

  local function time_of(s)
    local n = tonumber(s)
    if not n or n ~= n then return 0 end
    return n
  end

  -- The fields of record `rec` (either layout) in layout 1's terms, in the
  -- order above; nil if unreadable: missing, too short or too long for the
  -- lengths it gives, an unknown version. (A record of at least 81 bytes
  -- holds the fixed part that struct.unpack reads: it cannot fail the call.)
  function fields_of(rec)
    if not rec then return nil end
    local n = #rec
    if n >= 81 then
      local v, state, mask, al, nl, ul, attempt, token, started_at, lease_until, lease_batch, finished_at,
        max_attempts, score, enqueued_at, run_at = struct.unpack(V1_FIXED, rec)
      if v == V1_VERSION then
        if n ~= 81 + al + nl + ul then return nil end
        local a = 74 + al
        return state, attempt, max_attempts, token, score, enqueued_at, run_at, started_at, finished_at,
          lease_until, lease_batch, mask, string.sub(rec, a, a + nl - 1), string.sub(rec, 74, a - 1),
          string.sub(rec, a + nl, n - 8), (struct.unpack('>I8', rec, n - 7))
      end
    end
    if string.byte(rec, 1) == V1_VERSION then return nil end
    -- A text record: its fields converted.
    local state, attempt, max_attempts, token, score, seq, enqueued_at, run_at, started_at,
      finished_at, nonce, ack_nonce, lease_until, lease_batch, flags, unique_key = string.match(rec, RECORD)
    if not state then return nil end
    local n_raw, n_packed = nonce_raw(nonce)
    local a_raw, a_packed = nonce_raw(ack_nonce)
    local mask = flags_mask(flags) + (n_packed and BITS.nonce or 0) + (a_packed and BITS.ack_nonce or 0)
    return tonumber(state), i4_of(attempt), i4_of(max_attempts), i4_of(token), i4_of(score), time_of(enqueued_at),
      time_of(run_at), time_of(started_at), time_of(finished_at), time_of(lease_until), u8_of(lease_batch), mask,
      n_raw, a_raw, unique_key, u8_of(seq)
  end

  -- A layout 1 record of fields in fields_of() terms. Callers keep the
  -- numbers within the layout's ranges (i4, u8) and the nonces' bytes to 255.
  function pack_record(state, attempt, max_attempts, token, score, enqueued_at, run_at, started_at, finished_at,
                             lease_until, lease_batch, mask, nonce, ack_nonce, unique_key, seq)
    return struct.pack(V1_FORMAT, V1_VERSION, state, mask, #ack_nonce, #nonce, #unique_key, attempt, token, started_at,
      lease_until, lease_batch, finished_at, max_attempts, score, enqueued_at, run_at, ack_nonce, nonce, unique_key, seq)
  end

  -- The record's fields, strings (state, attempt, ... unique_key: see R_*),
  -- formatted as the text layout held them; nil if unreadable. A text record's
  -- are its own text.
  function parse(rec)
    if not rec then return nil end
    if string.byte(rec, 1) ~= V1_VERSION then return string.match(rec, RECORD) end
    local state, attempt, max_attempts, token, score, enqueued_at, run_at, started_at, finished_at,
      lease_until, lease_batch, mask, nonce, ack_nonce, unique_key, seq = fields_of(rec)
    if not state then return nil end
    -- Times: 0 is empty.
    return int_str(state), int_str(attempt), int_str(max_attempts), int_str(token), int_str(score),
      seq > 0 and fmt_seq(seq) or '', enqueued_at ~= 0 and fmt_time(enqueued_at) or '',
      run_at ~= 0 and fmt_time(run_at) or '', started_at ~= 0 and fmt_time(started_at) or '',
      finished_at ~= 0 and fmt_time(finished_at) or '', nonce_text(nonce, mask % (BITS.nonce + BITS.nonce) >= BITS.nonce),
      nonce_text(ack_nonce, mask >= BITS.ack_nonce), lease_until ~= 0 and fmt_time(lease_until) or '',
      lease_batch > 0 and int_str(lease_batch) or '', flags_text(mask), unique_key
  end

  -- The state of record `rec` as parse() gives it, without parsing the rest
  -- (search and the like filter on it); nil if the record is missing or
  -- starts as neither layout does.
  function state_of(rec)
    if not rec then return nil end
    local v, s = string.byte(rec, 1, 2)
    if v == V1_VERSION then return s and int_str(s) or nil end
    return string.match(rec, '^(%d)|')
  end

  -- A layout 1 record of fields given as parse() gives them.
  function record(state, attempt, max_attempts, token, score, seq, enqueued_at, run_at, started_at,
                        finished_at, nonce, ack_nonce, lease_until, lease_batch, flags, unique_key)
    local n_raw, n_packed = nonce_raw(nonce or '')
    local a_raw, a_packed = nonce_raw(ack_nonce or '')
    local mask = flags_mask(flags or '') + (n_packed and BITS.nonce or 0) + (a_packed and BITS.ack_nonce or 0)
    return pack_record(tonumber(state), i4_of(attempt), i4_of(max_attempts), i4_of(token), i4_of(score),
      time_of(enqueued_at), time_of(run_at), time_of(started_at), time_of(finished_at), time_of(lease_until),
      u8_of(lease_batch), mask, n_raw, a_raw, unique_key or '', u8_of(seq))
  end

  -- record() of a parsed record kept as a table (see R_*).
  function record_of(fields)
    return record(unpack(fields, 1, R_COUNT))
  end

  -- A new job's record (enqueue): state (a prelude name), max_attempts (a
  -- number, or its text), score (text, as the ready structures take it), seq
  -- (a number), enqueued_at and run_at (formatted times, '' for none), nonce,
  -- flags and unique key as record() takes them. A job without a unique key
  -- is the same as the call's other jobs of its state, score and
  -- max_attempts but for its seq: all of it before the seq (its head) is
  -- packed once per call, and each job packs only its seq.
  function new_record(state, max_attempts, score, seq, enqueued_at, run_at, nonce, flags, unique_key)
    if unique_key ~= '' or run_at ~= '' or flags ~= '' then
      local n_raw, n_packed = nonce_raw(nonce)
      return pack_record(tonumber(state), 0, i4_of(max_attempts), 0, i4_of(score), time_of(enqueued_at),
        time_of(run_at), 0, 0, 0, 0, flags_mask(flags) + (n_packed and BITS.nonce or 0), n_raw, '', unique_key, seq)
    end
    local heads = V1_MEMO.new_heads[state]
    if not heads or heads.nonce ~= nonce or heads.at ~= enqueued_at then
      heads = {nonce = nonce, at = enqueued_at}
      V1_MEMO.new_heads[state] = heads
    end
    local by_score = heads[score]
    if not by_score then
      by_score = {}
      heads[score] = by_score
    end
    local head = by_score[max_attempts]
    if not head then
      -- The record but for its last 8 bytes (seq).
      local n_raw, n_packed = nonce_raw(nonce)
      head = string.sub(pack_record(tonumber(state), 0, i4_of(max_attempts), 0, i4_of(score), time_of(enqueued_at),
        0, 0, 0, 0, 0, n_packed and BITS.nonce or 0, n_raw, '', '', 0), 1, -9)
      by_score[max_attempts] = head
    end
    return head .. struct.pack('>I8', seq)
  end
end

-- A worker's beat (see renew-5.lua): last_seen, ttl and running jobs, and its
-- place in the beats ZSET. A worker not registered (deregistered, or forgotten
-- after GONE_KEPT) is not brought back by a late beat.
local function worker_beat(beats, worker, packed, now)
  if redis.call('EXISTS', worker) == 0 then return end
  local beat = cmsgpack.unpack(packed)  -- {worker id, ttl, msgpack of the running ids}
  local ttl = tonumber(beat[2])
  redis.call('HSET', worker, 'last_seen', fmt_time(now), 'ttl', fmt_time(ttl), 'running', beat[3])
  redis.call('ZADD', beats, fmt_time(now + ttl), beat[1])
  redis.call('EXPIRE', worker, math.ceil(ttl + GONE_KEPT))
end

local function base_of(key)
  return string.match(key, '^(.*}:)')
end

-- `redis.call(cmd, key, unpack(args))`, chunked; args may be empty. key nil:
-- the command takes its keys in args (MSET, DEL).
local function call_chunked(cmd, key, args)
  local n = #args
  for i = 1, n, CHUNK do
    if key then
      redis.call(cmd, key, unpack(args, i, math.min(i + CHUNK - 1, n)))
    else
      redis.call(cmd, unpack(args, i, math.min(i + CHUNK - 1, n)))
    end
  end
end

-- MGET of many keys, chunked, as one array.
local function mget(keys)
  local n = #keys
  if n <= CHUNK then
    if n == 0 then return {} end
    return redis.call('MGET', unpack(keys))
  end
  local out = {}
  for i = 1, n, CHUNK do
    local part = redis.call('MGET', unpack(keys, i, math.min(i + CHUNK - 1, n)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end

-- The keys of a job, to delete it. `flags`: its record flags, if known (nil:
-- every key is named); the error list, progress, dependency and limit keys
-- are named only when flagged. `has_uk`: whether the record holds a unique
-- key (u: exists only then), nil if not known. A plain job's delete names
-- j:, b:, r: and t: (each key named costs a key name built here and a
-- look-up in Redis: ~1,500 instructions whether it exists or not).
local function add_job_keys(keys, base, id, flags, has_uk)
  local n = #keys
  keys[n + 1] = base .. 'j:' .. id
  keys[n + 2] = base .. 'b:' .. id
  keys[n + 3] = base .. 'r:' .. id
  keys[n + 4] = base .. 't:' .. id
  n = n + 4
  if flags == nil or has_flag(flags, '1') then n = n + 1; keys[n] = base .. 'e:' .. id end
  if flags == nil or has_flag(flags, 'p') then n = n + 1; keys[n] = base .. 'p:' .. id end
  if has_uk ~= false then n = n + 1; keys[n] = base .. 'u:' .. id end
  if flags == nil or has_flag(flags, 'd') then n = n + 1; keys[n] = base .. 'c:' .. id end
  if flags == nil or has_flag(flags, 'w') then
    keys[n + 1] = base .. 'd:' .. id
    keys[n + 2] = base .. 'dp:' .. id
    n = n + 2
  end
  if flags == nil or has_flag(flags, 'l') then keys[n + 1] = base .. 'l:' .. id end
end

local function error_record(attempt, kind, message, at)
  return cmsgpack.pack({attempt = attempt, type = kind, message = message, traceback = '', at = at})
end

local function release_unique(unique, uk, id)
  if uk and uk ~= '' and redis.call('HGET', unique, uk) == id then
    redis.call('HDEL', unique, uk)
  end
end

-- Who holds unique key `uk` now: the holder's id, or false when free. A key
-- held by a succeeded job whose window ended is free, and forgotten here.
local function unique_holder(unique, held, uk, now)
  local holder = redis.call('HGET', unique, uk)
  if holder then
    local until_ = redis.call('ZSCORE', held, uk)
    if until_ and tonumber(until_) <= now then
      redis.call('ZREM', held, uk)
      redis.call('HDEL', unique, uk)
      return false
    end
  end
  return holder
end

-- A job with unique key `uk` succeeded: keep the key for its window (u:<id>
-- holds the seconds) or release it at once.
local function unique_succeeded(unique, held, base, uk, id, now)
  if uk == '' then return false end
  local ukey = base .. 'u:' .. id
  local ttl = tonumber(redis.call('GET', ukey))
  if ttl then redis.call('DEL', ukey) end
  if ttl and ttl > 0 and redis.call('HGET', unique, uk) == id then
    redis.call('ZADD', held, fmt_time(now + ttl), uk)
    return true
  end
  release_unique(unique, uk, id)
  return false
end

-- Free unique keys whose window ended (at most `limit`). Returns how many.
local function trim_unique_held(unique, held, now, limit)
  local done = redis.call('ZRANGEBYSCORE', held, '-inf', g17(now), 'LIMIT', '0', int_str(limit))
  if #done == 0 then return 0 end
  -- A key in `held` is never held by a live job (taking it removes it
  -- from `held`), so it is the finished job's to free.
  call_chunked('HDEL', unique, done)
  call_chunked('ZREM', held, done)
  return #done
end

-- Ready pushes, gathered per priority: push(p, member) ... flush().
local function ready_pusher(prio, base)
  local lists, order = {}, {}
  local pusher = {}
  -- The members to push for score p, for a caller that appends many of one
  -- score itself (enqueue).
  function pusher.list(p)
    local list = lists[p]
    if not list then
      list = {}
      lists[p] = list
      order[#order + 1] = p
    end
    return list
  end
  function pusher.push(p, member)
    local list = lists[p] or pusher.list(p)
    list[#list + 1] = member
  end
  function pusher.flush()
    for i = 1, #order do
      local p = order[i]
      call_chunked('RPUSH', base .. 'rl:' .. p, lists[p])
      redis.call('ZADD', prio, p, p)
    end
    return #order
  end
  return pusher
end

-- Pop up to `want` ready members in order: priority first, then seq, merging
-- the priority lists with the `ready` ZSET of jobs back from a delay, and
-- return them in one table. Each reply is also added to `rounds` (the
-- caller's own) as soon as it is taken, so that what was popped is known
-- even if a damaged list stops this half-way. A first reply that is all of
-- them (the rule) is returned as it is: no copy, member by member.
local function pop_ready(ready, prio, base, want, rounds)
  local out, n, own = {}, 0, true
  local function took(got)
    rounds[#rounds + 1] = got
    local k = #got
    if n == 0 then
      out, own = got, false
    else
      if not own then
        local copy = {}
        for i = 1, n do copy[i] = out[i] end
        out, own = copy, true
      end
      for i = 1, k do out[n + i] = got[i] end
    end
    n = n + k
  end
  while n < want do
    local need = want - n
    local top = redis.call('ZRANGE', prio, '0', '0', 'WITHSCORES')
    local head = redis.call('ZRANGE', ready, '0', '0', 'WITHSCORES')
    if #top == 0 and #head == 0 then break end
    local lp = #top > 0 and tonumber(top[2]) or nil
    local zp = #head > 0 and tonumber(head[2]) or nil
    if zp == nil or (lp ~= nil and lp < zp) then
      -- The whole list comes before the ZSET's head.
      local list = base .. 'rl:' .. top[1]
      local got = redis.call('LPOP', list, int_str(need))
      if not got then got = {} end
      took(got)
      if #got < need then redis.call('ZREM', prio, top[1]) end
    elseif lp == nil or zp < lp then
      local got = redis.call('ZRANGEBYSCORE', ready, '-inf', lp and ('(' .. top[2]) or '+inf', 'LIMIT', '0', int_str(need))
      took(got)
      call_chunked('ZREM', ready, got)
    else
      -- Same priority in both: merge by member (fixed-width seq first).
      local list = base .. 'rl:' .. top[1]
      local la = redis.call('LRANGE', list, 0, need - 1)
      local za = redis.call('ZRANGEBYSCORE', ready, top[2], top[2], 'LIMIT', 0, need)
      local i, j, taken, merged = 1, 1, {}, {}
      while #merged < need and (i <= #la or j <= #za) do
        if j > #za or (i <= #la and la[i] < za[j]) then
          merged[#merged + 1] = la[i]
          i = i + 1
        else
          merged[#merged + 1] = za[j]
          taken[#taken + 1] = za[j]
          j = j + 1
        end
      end
      took(merged)
      if i > 1 then redis.call('LTRIM', list, i - 1, -1) end
      if redis.call('EXISTS', list) == 0 then redis.call('ZREM', prio, top[1]) end
      call_chunked('ZREM', ready, taken)
    end
  end
  return out
end

-- Give up `count` jobs of lease batch `batch` (acked, cancelled, moved by a
-- renewal); the batch goes when none is left.
local function lease_release(leases, leasecount, base, batch, count)
  if not batch or batch == '' then return end
  if redis.call('HINCRBY', leasecount, batch, int_str(-count)) <= 0 then
    redis.call('HDEL', leasecount, batch)
    redis.call('ZREM', leases, batch)
    redis.call('DEL', base .. 'lease:' .. batch)
  end
end

-- Open lease batch `batch` (a fresh id from the seq counter) for `ids`, until
-- `deadline` (a formatted time).
local function lease_open(leases, leasecount, base, batch, ids, deadline)
  call_chunked('RPUSH', base .. 'lease:' .. batch, ids)
  redis.call('HSET', leasecount, batch, int_str(#ids))
  redis.call('ZADD', leases, deadline, batch)
end

local function wake(wakekey, n)
  if n <= 0 then return end
  if n > WAKE_TOKENS then n = WAKE_TOKENS end
  local tokens = {}
  for i = 1, n do tokens[i] = '1' end
  redis.call('LPUSH', wakekey, unpack(tokens))
  redis.call('LTRIM', wakekey, '0', WAKE_TOKENS_LAST)
end

-- Dependencies (NewJob.depends_on). A job with parents is stored `waiting`
-- (in the queue's `waiting` ZSET, off every ready structure) with its counts
-- in d:<id>; each parent still running lists it in c:<parent> and carries the
-- 'd' flag, so the scripts that finish a job (ack, claim's and recover's
-- lease recovery, cancel) look for dependants only when there are some.
-- d:<id> is "mode|pending|failed|delay", rewritten as each parent finishes;
-- the parent ids are apart in dp:<id> (written once), so a job with
-- thousands of parents costs each parent's finish a few bytes, not the list.
local DEPS = '^(%d)|(%-?%d+)|(%d+)|(.*)$'

local function deps_parse(v)
  if not v then return nil end
  local mode, pending, failed, delay = string.match(v, DEPS)
  if not mode then return nil end
  return tonumber(mode), tonumber(pending), tonumber(failed), delay
end

local function deps_format(mode, pending, failed, delay)
  return int_str(mode) .. '|' .. int_str(pending) .. '|' .. int_str(failed) .. '|' .. delay
end

-- What a waiting job does given its counts: 'run', 'cancel' or 'wait'.
-- SUCCEEDED (0) gives up at the first failed parent; FINISHED (1) and FAILED
-- (2) wait for every parent.
local function deps_outcome(mode, pending, failed)
  if mode == 0 then
    if failed > 0 then return 'cancel' end
    if pending <= 0 then return 'run' end
  elseif pending <= 0 then
    if mode == 1 or failed > 0 then return 'run' end
    return 'cancel'
  end
  return 'wait'
end

-- A waiting job whose parents are done: queued with the position its enqueue
-- gave it (through the `ready` ZSET, as a job back from a delay), or
-- scheduled by its own delay counted from now. f: its parsed record.
local function deps_run(base, id, f, delay, now, nows)
  local seq = f[R_SEQ]
  local score = tonumber(f[R_SCORE]) and f[R_SCORE] or '0'
  redis.call('ZREM', base .. 'waiting', id)
  local d = tonumber(delay) or 0
  f[R_SCORE], f[R_FINISHED_AT], f[R_LEASE_UNTIL], f[R_LEASE_BATCH] = score, '', '', ''
  if d > 0 then
    local due = fmt_time(now + d)
    f[R_STATE], f[R_RUN_AT] = SCHEDULED, due
    redis.call('SET', base .. 'j:' .. id, record_of(f))
    redis.call('ZADD', base .. 'sched', due, seq .. id)
  else
    f[R_STATE], f[R_RUN_AT] = QUEUED, nows
    redis.call('SET', base .. 'j:' .. id, record_of(f))
    redis.call('ZADD', base .. 'ready', score, seq .. id)
  end
end

-- A waiting job a failed parent cancels: kept in `cancelled` for the
-- retention (cleanup trims it), its unique key released at once.
local function deps_cancel(base, id, f, nows)
  redis.call('ZREM', base .. 'waiting', id)
  redis.call('ZREM', base .. 'live', id)
  event(base, 'cancelled', id, task_of(base, id))
  release_unique(base .. 'unique', f[R_UNIQUE_KEY], id)
  f[R_STATE], f[R_FINISHED_AT], f[R_LEASE_UNTIL], f[R_LEASE_BATCH] = CANCELLED, nows, '', ''
  redis.call('SET', base .. 'j:' .. id, record_of(f))
  redis.call('ZADD', base .. 'cancelled', nows, id)
end

-- Job `id` of the queue at `base` finished, `failed` (dead or cancelled) or
-- not (succeeded): update the jobs waiting on it, in the same script as the
-- finish, and cascade through the ones this cancels (their own dependants
-- count them failed). Its dependant list goes: each dependant is told once
-- (a dead parent revived by retry_dead does not revive them).
local function deps_settle(base, id, failed, now, nows)
  local ids, fails = {id}, {failed}
  local ran = 0
  while #ids > 0 do
    local parent, parent_failed = table.remove(ids), table.remove(fails)
    local ck = base .. 'c:' .. parent
    local children = redis.call('LRANGE', ck, 0, -1)
    redis.call('DEL', ck)
    for i = 1, #children do
      local cid = children[i]
      local f = {parse(redis.call('GET', base .. 'j:' .. cid))}
      if f[R_STATE] == WAITING then
        local dk = base .. 'd:' .. cid
        local mode, pending, nfailed, delay = deps_parse(redis.call('GET', dk))
        if mode then
          pending = pending - 1
          if parent_failed then nfailed = nfailed + 1 end
          redis.call('SET', dk, deps_format(mode, pending, nfailed, delay))
          local outcome = deps_outcome(mode, pending, nfailed)
          if outcome == 'run' then
            deps_run(base, cid, f, delay, now, nows)
            ran = ran + 1
          elseif outcome == 'cancel' then
            deps_cancel(base, cid, f, nows)
            if has_flag(f[R_FLAGS], 'd') then
              ids[#ids + 1] = cid
              fails[#fails + 1] = true
            end
          end
        end
      end
    end
  end
  -- A job now ready or newly scheduled: idle workers look again (and end
  -- their wait at its due time).
  wake(base .. 'wake', ran)
end

-- Limits (NewJob.limit), counted per (queue, key) at claim. A limited job
-- travels the ready structures like any other and carries the 'l' flag (its
-- key in l:<id>), so a plain job costs claim nothing more. When claim meets a
-- limited job over its key's limit it parks it in lq:<key> (score p, member
-- <seq><id>: the key's own priority-then-FIFO order), once, and moves on:
-- a saturated key never blocks its queue, and each job is parked at most once
-- per unpark. `limitwait` lists the keys that have parked jobs, scored by when
-- they may go again: the rate window's next opening, +inf while waiting for an
-- active job to leave (that job's ack, cancel or lease recovery sets it to
-- now). Claim first unparks, head first, as many jobs as the key's room,
-- back into the `ready` ZSET with their old position.
--   limits    HASH  key -> "concurrency|rate|per" (the latest enqueue's)
--   lactive   HASH  key -> jobs of that key now active
--   lr:<key>  ZSET  the lease log of the rate window (score lease time)
local LIMITS = {}

local function limit_params(base, key)
  local memo = base .. key
  local lim = LIMITS[memo]
  if not lim then
    local c, r, per = string.match(redis.call('HGET', base .. 'limits', key) or '', '^([^|]*)|([^|]*)|(.*)$')
    lim = {conc = tonumber(c) or 0, rate = tonumber(r) or 0, per = tonumber(per) or 0}
    if lim.per <= 0 then lim.rate = 0 end
    LIMITS[memo] = lim
  end
  return lim
end

-- Room left under the key's concurrency cap and rate window (math.huge when
-- unlimited), and when the window next opens (nil when it holds no lease).
local function limit_room(base, key, lim, now)
  local conc_left, rate_left, opens = math.huge, math.huge, nil
  if lim.conc > 0 then
    conc_left = lim.conc - (tonumber(redis.call('HGET', base .. 'lactive', key)) or 0)
  end
  if lim.rate > 0 then
    local log = base .. 'lr:' .. key
    redis.call('ZREMRANGEBYSCORE', log, '-inf', fmt_time(now - lim.per))
    rate_left = lim.rate - redis.call('ZCARD', log)
    local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
    if #oldest > 0 then opens = tonumber(oldest[2]) + lim.per end
  end
  return conc_left, rate_left, opens
end

-- Count a lease of job `id` against its key.
local function limit_book(base, key, lim, id, now, nows)
  redis.call('HINCRBY', base .. 'lactive', key, 1)
  if lim.rate > 0 then
    local log = base .. 'lr:' .. key
    redis.call('ZADD', log, nows, id .. '@' .. nows)
    -- The log of a key that goes quiet expires with its window.
    redis.call('PEXPIRE', log, math.ceil(lim.per * 1000) + 1000)
  end
end

-- Move up to the key's room of parked jobs (head first) back to `ready`, and
-- score the key in `limitwait` for when it may go next (or drop it when
-- nothing is parked). Returns how many moved.
local function limit_unpark(base, key, lim, now)
  local lq = base .. 'lq:' .. key
  local conc_left, rate_left, opens = limit_room(base, key, lim, now)
  local room = math.min(conc_left, rate_left, MAINTENANCE_LIMIT)
  local moved = 0
  if room > 0 then
    local head = redis.call('ZRANGE', lq, 0, room - 1, 'WITHSCORES')
    local add, members = {}, {}
    for i = 1, #head, 2 do
      add[#add + 1] = head[i + 1]
      add[#add + 1] = head[i]
      members[#members + 1] = head[i]
    end
    call_chunked('ZADD', base .. 'ready', add)
    call_chunked('ZREM', lq, members)
    moved = #members
  end
  if redis.call('EXISTS', lq) == 0 then
    redis.call('ZREM', base .. 'limitwait', key)
  else
    local score = '+inf'
    if rate_left - moved <= 0 then score = fmt_time(opens or (now + lim.per)) end
    redis.call('ZADD', base .. 'limitwait', score, key)
  end
  return moved
end

-- Claim met limited job `id` (priority score p, ready member `member`): true
-- if it may be leased (the lease is then counted), false if it was parked.
-- A job is leased only ahead of every parked job of its key, so the key's
-- order holds.
local function limit_admit(base, id, p, member, now, nows)
  local key = redis.call('GET', base .. 'l:' .. id)
  if not key then return true end
  local lim = limit_params(base, key)
  local lq = base .. 'lq:' .. key
  local head = redis.call('ZRANGE', lq, 0, 0, 'WITHSCORES')
  local pn = tonumber(p) or 0
  if #head == 0 or pn < tonumber(head[2]) or (pn == tonumber(head[2]) and member < head[1]) then
    local conc_left, rate_left = limit_room(base, key, lim, now)
    if conc_left > 0 and rate_left > 0 then
      limit_book(base, key, lim, id, now, nows)
      return true
    end
  end
  redis.call('ZADD', lq, pn, member)
  limit_unpark(base, key, lim, now)
  return false
end

-- Keys whose wait is over (window open, or an active job left): unpark their
-- room. At most 100 keys per call. Returns how many jobs moved.
local function limit_promote(base, now)
  local due = redis.call('ZRANGEBYSCORE', base .. 'limitwait', '-inf', g17(now), 'LIMIT', '0', '100')
  local moved = 0
  for i = 1, #due do
    moved = moved + limit_unpark(base, due[i], limit_params(base, due[i]), now)
  end
  return moved
end

-- Limited job `id` left ACTIVE (ack, cancel, lease recovery): one less active
-- for its key; a key with parked jobs waiting for that is due now (and idle
-- workers wake to claim it).
local function limit_release(base, id, nows)
  local key = redis.call('GET', base .. 'l:' .. id)
  if not key then return end
  if redis.call('HINCRBY', base .. 'lactive', key, -1) <= 0 then
    redis.call('HDEL', base .. 'lactive', key)
  end
  if redis.call('ZADD', base .. 'limitwait', 'XX', 'CH', nows, key) > 0 then
    wake(base .. 'wake', 1)
  end
end

-- A queued limited job is cancelled: out of its key's parked set, if there.
-- Returns true if it was parked (it then has no ready entry to ghost). If it
-- was not, it may have been unparked into the room it now leaves unused: the
-- key's parked jobs are due for a look (else they could wait for an active
-- job that does not exist).
local function limit_unpark_cancelled(base, id, member, nows)
  local key = redis.call('GET', base .. 'l:' .. id)
  if not key then return false end
  local lq = base .. 'lq:' .. key
  if redis.call('ZREM', lq, member) == 0 then
    redis.call('ZADD', base .. 'limitwait', 'XX', nows, key)
    return false
  end
  if redis.call('EXISTS', lq) == 0 then redis.call('ZREM', base .. 'limitwait', key) end
  return true
end

-- Dead-letter a job whose stored data is unusable (record missing or
-- unreadable, body missing), with a reason a person can read in the
-- dead-letter queue. `dead_keep` false: dead jobs are not kept (dead_ttl 0).
-- A readable record names the job's unique key, released like any dead
-- job's (else enqueue would answer this dead job's id for that key forever);
-- without one the key, if any, is unknown.
local function dead_letter_bad(base, id, dead, unique, reason, fields, now, nows, dead_keep)
  local attempt, max_attempts, token, score, seq, enqueued_at, nonce, flags, unique_key =
    '0', '0', '0', '0', '', nows, '', '', ''
  if fields then
    attempt, max_attempts, token, score = fields[R_ATTEMPT], fields[R_MAX_ATTEMPTS], fields[R_TOKEN], fields[R_SCORE]
    seq, enqueued_at, nonce = fields[R_SEQ], fields[R_ENQUEUED_AT], fields[R_NONCE]
    flags, unique_key = fields[R_FLAGS], fields[R_UNIQUE_KEY]
    release_unique(unique, unique_key, id)
  end
  local ek = base .. 'e:' .. id
  local t_ek = redis.call('TYPE', ek)['ok']
  if t_ek ~= 'list' and t_ek ~= 'none' then redis.call('DEL', ek) end
  redis.call('RPUSH', ek, error_record(tonumber(attempt) or 0, 'CorruptJobError', reason, now))
  if has_flag(flags, 'd') then deps_settle(base, id, true, now, nows) end
  redis.call('ZREM', base .. 'live', id)
  event(base, 'dead', id, task_of(base, id))
  if dead_keep then
    redis.call('SET', base .. 'j:' .. id, record(DEAD, attempt, max_attempts, token, score, seq, enqueued_at, '', '', nows, nonce, '', '', '', with_errors(flags), unique_key))
    redis.call('ZADD', dead, nows, id)
  else
    local keys = {}
    add_job_keys(keys, base, id, fields and flags or nil)
    redis.call('DEL', unpack(keys))
  end
end

-- Move due jobs of one delayed ZSET to the `ready` ZSET, keeping their member
-- (hence their position). Returns how many.
local function promote(ready, delayed, base, now)
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', g17(now), 'LIMIT', '0', int_str(MAINTENANCE_LIMIT))
  local n = #due
  if n == 0 then return 0 end
  local keys = {}
  for i = 1, n do keys[i] = base .. 'j:' .. string.sub(due[i], 17) end
  local records = mget(keys)
  local add, writes = {}, {}
  for i = 1, n do
    local state, attempt, max_attempts, token, score, enqueued_at, run_at, started_at, finished_at,
      lease_until, lease_batch, mask, nonce, ack_nonce, unique_key, seq = fields_of(records[i])
    if state then
      writes[#writes + 1] = keys[i]
      writes[#writes + 1] = pack_record(V1.state.QUEUED, attempt, max_attempts, token, score, enqueued_at, run_at, started_at,
        finished_at, lease_until, lease_batch, mask, nonce, ack_nonce, unique_key, seq)
      add[#add + 1] = int_str(score)
    else
      add[#add + 1] = '0'  -- claim dead-letters it with a reason
    end
    add[#add + 1] = due[i]
  end
  call_chunked('ZREM', delayed, due)
  call_chunked('ZADD', ready, add)
  call_chunked('MSET', nil, writes)
  return n
end

-- Take back the jobs of expired lease batches: back to their queue (new
-- position, like a fresh push), or dead when their attempts are used up; a
-- LeaseExpiredError record is appended either way, its message `lease_expired`
-- (fastjobs.job.LEASE_EXPIRED_MESSAGE, passed by the caller: one source of the
-- text). Returns how many jobs.
local function recover(prio, leases, leasecount, dead, unique, seqkey, base, now, nows, dead_keep, lease_expired)
  local batches = redis.call('ZRANGEBYSCORE', leases, '-inf', g17(now), 'LIMIT', '0', int_str(LEASE_BATCH_LIMIT))
  if #batches == 0 then return 0 end
  local pusher = ready_pusher(prio, base)
  local dead_add, writes, doomed, settled, gone = {}, {}, {}, {}, {}
  local recovered = 0
  local now6 = tonumber(nows)
  for b = 1, #batches do
    local batch = batches[b]
    local ids = redis.call('LRANGE', base .. 'lease:' .. batch, 0, -1)
    local keys = {}
    for i = 1, #ids do keys[i] = base .. 'j:' .. ids[i] end
    local records = mget(keys)
    for i = 1, #ids do
      local id = ids[i]
      -- As numbers (fields_of), written back with pack_record: parse() and
      -- record() would format and read back every field.
      local state, attempt, max_attempts, token, score, enqueued_at, run_at, started_at, finished_at,
        lease_until, lease_batch, mask, nonce, ack_nonce, unique_key, seq = fields_of(records[i])
      if state == V1.state.ACTIVE and int_str(lease_batch) == batch then
        recovered = recovered + 1
        local flags = flags_text(mask)
        if has_flag(flags, 'l') then limit_release(base, id, nows) end
        redis.call('RPUSH', base .. 'e:' .. id, error_record(attempt, 'LeaseExpiredError', lease_expired, now))
        -- With the error list's flag (with_errors).
        if mask % 2 == 0 then mask = mask + V1.bit.errors end
        if attempt >= max_attempts then
          release_unique(unique, unique_key, id)
          if has_flag(flags, 'd') then settled[#settled + 1] = id end
          gone[#gone + 1] = id
          event(base, 'dead', id, task_of(base, id))
          if dead_keep then
            writes[#writes + 1] = keys[i]
            writes[#writes + 1] = pack_record(V1.state.DEAD, attempt, max_attempts, token, score, enqueued_at, run_at,
              started_at, now6, 0, 0, mask, nonce, ack_nonce, unique_key, seq)
            dead_add[#dead_add + 1] = nows
            dead_add[#dead_add + 1] = id
          else
            add_job_keys(doomed, base, id, flags, unique_key ~= '')
          end
        else
          local seq_n = redis.call('INCR', seqkey)
          writes[#writes + 1] = keys[i]
          writes[#writes + 1] = pack_record(V1.state.QUEUED, attempt, max_attempts, token, score, enqueued_at, now6,
            started_at, finished_at, 0, 0, mask, nonce, ack_nonce, unique_key, seq_n)
          pusher.push(int_str(score), fmt_seq(seq_n) .. id)
          event(base, 'released', id, task_of(base, id))
        end
      end
    end
    redis.call('DEL', base .. 'lease:' .. batch)
    redis.call('HDEL', leasecount, batch)
  end
  call_chunked('ZREM', leases, batches)
  pusher.flush()
  call_chunked('ZADD', dead, dead_add)
  call_chunked('ZREM', base .. 'live', gone)
  call_chunked('MSET', nil, writes)
  -- Dependants learn of the deaths before the dead jobs' keys (their
  -- dependant lists among them) may go.
  for i = 1, #settled do deps_settle(base, settled[i], true, now, nows) end
  call_chunked('DEL', nil, doomed)
  return recovered
end

-- Delete jobs finished before `cutoff` from a retention ZSET (at most
-- `limit`), unless they left that state since. Returns how many entries.
local function trim_zset(zset, base, cutoff, limit, state)
  local old = redis.call('ZRANGEBYSCORE', zset, '-inf', '(' .. g17(cutoff), 'LIMIT', '0', int_str(limit))
  local n = #old
  if n == 0 then return 0 end
  local jkeys = {}
  for i = 1, n do jkeys[i] = base .. 'j:' .. old[i] end
  local records = mget(jkeys)
  local keys = {}
  -- Per job only what names its keys: a layout 1 record's state, flag bits and
  -- unique key length, read at their offsets (parse() formats every field:
  -- ~15,000 instructions a job, more than all the rest of a trim); a record of
  -- another layout, or one whose lengths do not add up, through parse().
  local V1_VERSION, V1_STATE = V1.version, tonumber(state)
  for i = 1, n do
    local rec = records[i]
    local v, st, mask, al, nl, ul
    if rec and #rec >= 81 then v, st, mask, al, nl, ul = struct.unpack('>BBBBBI4', rec) end
    if v == V1_VERSION and #rec == 81 + al + nl + ul then
      if st == V1_STATE then add_job_keys(keys, base, old[i], flags_text(mask), ul > 0) end
    else
      local f = {parse(rec)}
      if f[R_STATE] == nil or f[R_STATE] == state then
        add_job_keys(keys, base, old[i], f[R_FLAGS], f[R_UNIQUE_KEY] and f[R_UNIQUE_KEY] ~= '')
      end
    end
  end
  call_chunked('ZREM', zset, old)
  call_chunked('DEL', nil, keys)
  return n
end

-- Damaged queues. A key of a queue that holds the wrong type of value (a
-- string where a list belongs: another program wrote it, or a person) makes
-- every command on it fail with WRONGTYPE. The scripts that serve several
-- queues in one call (claim, stats) run each queue under pcall, so one
-- damaged queue is reported instead of failing the call for all of them.
local function wrong_type(key, want)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= want then return key .. ' is a ' .. t .. ', not a ' .. want end
  return nil
end

-- The first structure of the queue at `base` that holds the wrong type, as
-- "<key> is a <type>, not a <type>"; nil if none does. Reads every structure
-- (a few hundred calls at most): only for a call that already failed.
local function damaged_key(base)
  -- (Tables built here, when a call already failed, not on every call of
  -- claim and stats.)
  -- What each structure must be (the layout above), in layout order:
  local QUEUE_TYPES = {
    {'prio', 'zset'}, {'ready', 'zset'}, {'sched', 'zset'}, {'retry', 'zset'}, {'leases', 'zset'},
    {'leasecount', 'hash'}, {'done', 'zset'}, {'cancelled', 'zset'}, {'dead', 'zset'}, {'live', 'zset'},
    {'ghosts', 'set'}, {'unique', 'hash'}, {'uniqueheld', 'zset'}, {'seq', 'string'}, {'wake', 'list'},
    {'paused', 'string'}, {'waiting', 'zset'}, {'limits', 'hash'}, {'lactive', 'hash'}, {'limitwait', 'zset'},
  }
  -- Keys named by the members of a structure: {structure, key prefix, type}.
  local NAMED_TYPES = {
    {'prio', 'rl:', 'list'}, {'leases', 'lease:', 'list'}, {'limitwait', 'lq:', 'zset'}, {'limits', 'lr:', 'zset'},
  }
  for i = 1, #QUEUE_TYPES do
    local found = wrong_type(base .. QUEUE_TYPES[i][1], QUEUE_TYPES[i][2])
    if found then return found end
  end
  for i = 1, #NAMED_TYPES do
    local holder, prefix, want = NAMED_TYPES[i][1], NAMED_TYPES[i][2], NAMED_TYPES[i][3]
    local members
    if holder == 'limits' then
      members = redis.call('HKEYS', base .. holder)
    else
      members = redis.call('ZRANGE', base .. holder, 0, 999)
    end
    for j = 1, #members do
      local found = wrong_type(base .. prefix .. members[j], want)
      if found then return found end
    end
  end
  return nil
end

-- What a queue's failed pcall means: for WRONGTYPE, the damage, in words an
-- operator can act on. Any other error is not the queue's damage (out of
-- memory, a bug): it is raised again, as if there had been no pcall.
local function damage_report(err, base)
  local message = type(err) == 'table' and err.err or tostring(err)
  if not string.find(message, 'WRONGTYPE', 1, true) then
    if type(err) ~= 'table' then err = {err = message} end
    error(err)
  end
  return damaged_key(base)
    or (base .. '* holds a key of the wrong type that is none of the queue structures (a job\'s own key?)')
end

-- Where the scripts run as one Redis 7 function library (backends/redis/
-- scripts.py), these definitions are built once, at FUNCTION LOAD, and
-- outlive a call: each call starts with this, which empties every per-call
-- memo and state above (tests/redis/test_library.py checks that none is
-- missed). A script run with EVALSHA builds them anew and never calls it.
local function call_fresh()
  EVENTS.on, EVENTS.everywhere, EVENTS.now = false, false, 0
  EVENTS.lists, EVENTS.order, EVENTS.heard = {}, {}, {}
  INT_STRINGS, SEQ_HIGH, SEQ_LOW = {}, {}, {}
  G17_VALUE, G17_TEXT = nil, nil
  LIMITS = {}
  v1_fresh()
end
