"""The Lua scripts of the sweep store, its leases and its rungs, each one atomic step in Redis.

The keys each script is given are :mod:`smptune.queue.keys`'s; the comment above each says
what its ``KEYS`` and ``ARGV`` are. The store registers its scripts once per client
(:class:`smptune.queue.store.SweepStore`), :mod:`.rungs` its own; :mod:`.lease` sends its
with ``EVAL``. A script that writes a time writes the Redis server's (``with_now``), so that
every host compares one clock.
"""

from __future__ import annotations

__all__ = [
    "CLAIM_ORPHAN",
    "EXTEND",
    "EXTEND_RUNNING",
    "FINISH_FINALIZE",
    "FINISH_TRIAL",
    "LEASE_RELEASE",
    "LEASE_RENEW",
    "LEASE_STEAL",
    "LEASE_TAKE",
    "RECORD_EPOCH",
    "RECORD_FOLD",
    "REQUEUE_PREEMPTED",
    "RUNG_DECIDE",
    "SET_HELD",
    "SET_PARAMS_ONCE",
    "with_helpers",
    "with_now",
]

# Times written here are the Redis server's (TIME), so that every host compares one clock.
_NOW = """
local t = redis.call('TIME')
local now = tostring(tonumber(t[1]) + tonumber(t[2]) / 1000000)
"""

# Lua helpers of the scripts below. ``holds``: whether the copy whose lease value is
# ``value`` holds ``lease``, the lease of ``member`` (a trial, or "retrain"): the lease is
# its, or it lapsed while ``member`` still runs unfinished (as lease.py's renewal re-creates
# it); '' holds any. ``chord_waits``: whether a chord (Celery's ``<group>.s``, ``.t`` and
# ``.j``) still waits for results: its size is set and fewer results than ``.s + .t`` are
# in (Celery counts them in ``.j``, a zset or a list, and fires at ``.s + .t``; it deletes
# the three only after it published the callback).
_HELPERS = """
local function holds(lease, running, finished, member, value)
  if value == '' then return true end
  local holder = redis.call('GET', lease)
  if holder then return holder == value end
  return redis.call('SISMEMBER', running, member) == 1
    and redis.call('SISMEMBER', finished, member) == 0
end
local function chord_waits(size, diff, results)
  local s = redis.call('GET', size)
  if not s then return false end
  local kind = redis.call('TYPE', results)['ok']
  local ready = 0
  if kind == 'zset' then ready = redis.call('ZCARD', results) end
  if kind == 'list' then ready = redis.call('LLEN', results) end
  return ready < tonumber(s) + tonumber(redis.call('GET', diff) or '0')
end
"""


def with_now(body: str) -> str:
    """``body`` after the lines that set its local ``now``: the Redis server's time."""
    return _NOW + body


def with_helpers(body: str) -> str:
    """``body`` after the definitions of the helpers ``holds`` and ``chord_waits``."""
    return _HELPERS + body


# -- sweeps ----------------------------------------------------------------------------

# KEYS: the sweep hash, the trial's hash, its chord's ``<group>.s``, ``.t`` and ``.j``;
# ARGV: none. Once per trial and generation (``topped_up`` in the trial's hash): a trial
# started again after a preemption gave its attempt back adds no second trial. Returns the
# new trial's number, or -1.
EXTEND = with_helpers("""
local sweep = KEYS[1]
if redis.call('HGET', sweep, 'open_ended') ~= '1' then return -1 end
if redis.call('HEXISTS', sweep, 'cancel_requested') == 1 then return -1 end
local deadline = redis.call('HGET', sweep, 'deadline')
local t = redis.call('TIME')
if deadline and tonumber(t[1]) + tonumber(t[2]) / 1000000 >= tonumber(deadline) then
  return -1
end
if not chord_waits(KEYS[3], KEYS[4], KEYS[5]) then return -1 end
local generation = redis.call('HGET', sweep, 'generation') or '0'
if redis.call('HGET', KEYS[2], 'topped_up') == generation then return -1 end
redis.call('HSET', KEYS[2], 'topped_up', generation)
redis.call('INCR', KEYS[4])
return redis.call('HINCRBY', sweep, 'n_trials', 1) - 1
""")

# KEYS: the sweep hash, its chord's ``<group>.s``, ``.t`` and ``.j``, the params hash, the
# finalize lease; ARGV: how many trials to add, then each new trial's configuration (JSON;
# none for an adaptive sampler). The chord must still wait: not fired, nor firing; and no
# finalize may hold the sweep. Returns the first new trial's number, or -1.
EXTEND_RUNNING = with_helpers("""
local sweep = KEYS[1]
if redis.call('HEXISTS', sweep, 'finalized_at') == 1 then return -1 end
if redis.call('EXISTS', KEYS[6]) == 1 then return -1 end
if not chord_waits(KEYS[2], KEYS[3], KEYS[4]) then return -1 end
redis.call('INCRBY', KEYS[3], tonumber(ARGV[1]))
local first = redis.call('HINCRBY', sweep, 'n_trials', tonumber(ARGV[1])) - tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('HSETNX', KEYS[5], tostring(first + i - 2), ARGV[i])
end
return first
""")

# The end of a generation's finalize, only from the copy that holds its lease and only
# while that generation is current. KEYS: sweep hash, finalize lease, finalizing set,
# finalized set, active set; ARGV: generation, holder, status, '1' to deactivate, sweep id.
# Returns 1 (written), 0 (written before), -1 (lease lost) or -2 (stale generation).
FINISH_FINALIZE = with_now("""
if tonumber(redis.call('HGET', KEYS[1], 'generation') or '0') ~= tonumber(ARGV[1]) then
  return -2
end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return -1 end
if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 then return 0 end
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'finalized_at', now)
redis.call('HINCRBY', KEYS[1], 'finalize_runs', 1)
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'finished', now)
  redis.call('SREM', KEYS[5], ARGV[5])
end
redis.call('DEL', KEYS[2])
return 1
""")

# -- trials ----------------------------------------------------------------------------

# A trial's final record, once, and its lease dropped. KEYS: finished set, trial hash, sweep
# hash, running set, scores zset, the trial's lease; ARGV: trial, the sweep's counter to
# count it in (``trials_<status>``), the record's fields (JSON object of strings), its
# score ('' for none), the lease's value ('': whoever holds it), the caller's time (unused),
# then the values (JSON list) of a complete trial's pruner steps, whose sorted sets are
# KEYS[8..] (see medians.py); KEYS[7]: the changes zset (see ``SET_PARAMS_ONCE``).
# Returns 1 (written), 0 (written before, or the sweep is gone) or -1 (lease lost).
FINISH_TRIAL = with_now("""
if redis.call('HEXISTS', KEYS[3], 'id') == 0 then return 0 end
local holder = redis.call('GET', KEYS[6])
if holder and holder ~= ARGV[5] then
  return -1
end
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('DEL', KEYS[6])
local fields = cjson.decode(ARGV[3])
for k, v in pairs(fields) do
  redis.call('HSET', KEYS[2], k, v)
end
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
redis.call('HSET', KEYS[3], 'last_finished', now)
redis.call('SREM', KEYS[4], ARGV[1])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
  local steps = cjson.decode(ARGV[7])
  for i, value in ipairs(steps) do
    redis.call('ZADD', KEYS[7 + i], value, ARGV[1])
  end
end
redis.call('ZADD', KEYS[7], redis.call('HINCRBY', KEYS[3], 'changes', 1), ARGV[1])
return 1
""")

# A configuration chosen at run time, once, and the trial marked changed: KEYS: the params
# hash, the sweep hash, the changes zset (trial -> the sweep's ``changes`` counter when it
# last changed: a worker's view of the study reads only what changed since its last read);
# ARGV: trial, configuration (JSON). Returns the recorded configuration.
SET_PARAMS_ONCE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[3], redis.call('HINCRBY', KEYS[2], 'changes', 1), ARGV[1])
end
return redis.call('HGET', KEYS[1], ARGV[1])
"""

# The writes of a trial's copy, each only while it holds the trial's lease (see ``holds``).
# KEYS: the lease, the running and finished sets, then the script's own; ARGV: the lease's
# value, the trial, then the script's own.
# KEYS[4..6]: curve, sweep hash, preempt flag; ARGV[3..4]: "<run>:<epoch>", score.
# Returns -1 (lease lost), else {cancel_requested, deadline, preempt flag set, TIME}.
RECORD_EPOCH = with_helpers("""
if not holds(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[1]) then return -1 end
redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
local stop = redis.call('HMGET', KEYS[5], 'cancel_requested', 'deadline')
local t = redis.call('TIME')
return {stop[1], stop[2], redis.call('EXISTS', KEYS[6]), t[1], t[2]}
""")

# KEYS[4..7]: folds, sweep hash, trial hash, run-times hash; ARGV[3..5]: run, result
# (JSON), its seconds ('' for none): counted, once, under the trial's worker in the
# run-times hash (the ETA's measure). Returns 1 (written), 0 (written before) or -1 (lease
# lost).
RECORD_FOLD = with_helpers("""
if not holds(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[1]) then return -1 end
if redis.call('HSETNX', KEYS[4], ARGV[3], ARGV[4]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[5], 'folds_done', 1)
if KEYS[7] and ARGV[5] and ARGV[5] ~= '' then
  local worker = redis.call('HGET', KEYS[6], 'worker') or ''
  redis.call('HINCRBY', KEYS[7], 'n:' .. worker, 1)
  redis.call('HINCRBYFLOAT', KEYS[7], 's:' .. worker, ARGV[5])
end
return 1
""")

# KEYS[4]: the hash to write; optional: KEYS[5] the active set, KEYS[6..] strings to set
# with it; ARGV[3]: the hash's fields (JSON object of strings), ARGV[4]: '1' to take
# ARGV[5] (the sweep) off the active set in the same step, ARGV[6..]: the strings' values.
# Returns 1 (written) or 0 (lease lost).
SET_HELD = with_helpers("""
if not holds(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[1]) then return 0 end
for k, v in pairs(cjson.decode(ARGV[3])) do
  redis.call('HSET', KEYS[4], k, v)
end
if ARGV[4] == '1' then redis.call('SREM', KEYS[5], ARGV[5]) end
for i = 6, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i])
end
return 1
""")

# -- claims ----------------------------------------------------------------------------

# A running trial whose lease expired, off the running set once, marked to be sent again.
# KEYS: running set, finished set, lease, trial hash, the to-send set, the rerun set; ARGV:
# trial. Returns 1 (claimed) or 0.
CLAIM_ORPHAN = with_now("""
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[4], 'status', 'requeued', 'requeued_at', now)
redis.call('HINCRBY', KEYS[4], 'requeues', 1)
redis.call('SADD', KEYS[5], ARGV[1])
redis.call('SADD', KEYS[6], ARGV[1])
return 1
""")

# KEYS: running set, finished set, lease, trial hash, the to-send set, the rerun set; ARGV:
# trial, worker name, (unused), the lease's value ('': whoever holds it; the worker is known
# to be gone). Returns 1 (given back) or 0.
REQUEUE_PREEMPTED = with_now("""
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[4], 'worker') ~= ARGV[2] then return 0 end
local holder = redis.call('GET', KEYS[3])
if ARGV[4] ~= '' and holder and holder ~= ARGV[4] then return 0 end
redis.call('DEL', KEYS[3])
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[4], 'status', 'requeued', 'requeued_at', now)
redis.call('HINCRBY', KEYS[4], 'preemptions', 1)
redis.call('HINCRBY', KEYS[4], 'attempts', -1)
redis.call('SADD', KEYS[5], ARGV[1])
redis.call('SADD', KEYS[6], ARGV[1])
return 1
""")

# -- leases (lease.py) -----------------------------------------------------------------

# Extend the lease; re-create it after it expired (a Redis restart, a slow heartbeat) only
# while the trial is still running and unfinished: once the reaper has taken the trial off
# the running set and queued it again, this copy has lost it for good.
# KEYS: lease, running set, finished set; ARGV: value, TTL ms, member. Returns 1 or 0.
LEASE_RENEW = """
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v and redis.call('SISMEMBER', KEYS[2], ARGV[3]) == 1
    and redis.call('SISMEMBER', KEYS[3], ARGV[3]) == 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# Take a free lease and mark its work running in one step, so that a holder that dies right
# after taking it leaves an orphan the reaper sees (running, no lease), never a silent gap.
# KEYS: lease, running set, finished set; ARGV: value, TTL ms, member. Returns 1 or 0.
LEASE_TAKE = """
if redis.call('SISMEMBER', KEYS[3], ARGV[3]) == 1 then return 0 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('SADD', KEYS[2], ARGV[3])
  return 1
end
return 0
"""

# Take over a lease from its dead holder on this host.
# KEYS: lease, running set; ARGV: the dead holder's value, value, TTL ms, member.
# Returns 1 or 0.
LEASE_STEAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[4])
  return 1
end
return 0
"""

# Drop the lease if this copy holds it. KEYS: lease; ARGV: value. Returns 1 or 0.
LEASE_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# -- rungs (rungs.py) ------------------------------------------------------------------

# A trial's decision at a successive-halving rung: its first one there, else decided now.
# KEYS: the rung's scores, its kept set, its stopped set
# ARGV: trial, score, bootstrap, factor
# Returns {kept (1 or 0), trials at the rung, trials scoring better, how many it keeps}.
RUNG_DECIDE = """
local trial, score = ARGV[1], tonumber(ARGV[2])
local bootstrap, factor = tonumber(ARGV[3]), tonumber(ARGV[4])
local before = redis.call('ZSCORE', KEYS[1], trial)
if before then score = tonumber(before) else redis.call('ZADD', KEYS[1], score, trial) end
local n = redis.call('ZCARD', KEYS[1])
local kept = math.max(1, math.floor(n / factor))
local better = redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%.17g', score), '+inf')
if redis.call('SISMEMBER', KEYS[2], trial) == 1 then return {1, n, better, kept} end
if redis.call('SISMEMBER', KEYS[3], trial) == 1 then return {0, n, better, kept} end
local keep = 0
if n <= bootstrap or better < kept then keep = 1 end
if keep == 1 then redis.call('SADD', KEYS[2], trial) else redis.call('SADD', KEYS[3], trial) end
return {keep, n, better, kept}
"""
