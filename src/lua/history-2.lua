--[[
  Add an ack flush's history rows to the current minute and hour (Redis
  time): in Redis Cluster, where the history's slot is not the queues', this
  call goes out beside the ack calls (concurrently: no extra wait); outside
  Cluster the ack script does the same itself (see _history).

  KEYS:
    1 <prefix>:{~history}:m   2 <prefix>:{~history}:h

  ARGV:
    1 the rows, msgpack {minutes keep, hours keep, {row, ...}} (see _history)

  Returns: 1.
]]
-- @include _common
-- @include _history

history_add(KEYS[1], KEYS[2], ARGV[1], now_time())
return 1
