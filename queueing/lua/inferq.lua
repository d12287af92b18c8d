#!lua name=inferq
-- inferq's server-side functions: each queue transition is one atomic step on one slot.
-- queueing/calls.py inserts a prelude above: the constants (GROUP, S_<STATUS>, counter
-- fields) and K/A, the positions of each function's named KEYS and ARGV (`tail` is where a
-- function's variadic part starts). Every key a function touches arrives in KEYS.

local TERMINAL = {[S_SUCCEEDED] = true, [S_FAILED] = true, [S_CANCELLED] = true}

local function event(ev, kind, data)
  return redis.call('XADD', ev, '*', 'type', kind, 'data', data)
end

local function status_event(status, extra)
  local body = '{"status":"' .. status .. '"'
  if extra then body = body .. ',' .. extra end
  return body .. '}'
end

local function notify(channel, message)
  redis.call('SPUBLISH', channel, message)
end

local function ack(queue, entry_id)
  redis.call('XACK', queue, GROUP, entry_id)
  redis.call('XDEL', queue, entry_id)
end

local function ensure_group(queue)
  if redis.call('EXISTS', queue) == 0 then
    redis.call('XGROUP', 'CREATE', queue, GROUP, '0', 'MKSTREAM')
  end
end

-- Add `units` and `jobs` to one queue's queued counters (negative to take them off).
local function count_queued(units_key, qfield, units, jobs)
  redis.call('HINCRBYFLOAT', units_key, QUEUED, units)
  redis.call('HINCRBYFLOAT', units_key, UNITS_OF .. qfield, units)
  redis.call('HINCRBY', units_key, JOBS_OF .. qfield, jobs)
end

-- Add `units` and `jobs` to the partition's preprocess counters (jobs with images waiting for
-- or in preparation: they become queued units of the model at the hand-off).
local function count_pre(units_key, units, jobs)
  redis.call('HINCRBYFLOAT', units_key, PRE_UNITS, units)
  redis.call('HINCRBY', units_key, PRE_JOBS, jobs)
end

-- Add `units` to a tenant's units queued or running in this partition (negative when a job
-- ends); a field back at zero goes, so the hash names only tenants with work.
local function count_tenant(units_key, tenant, units)
  if not tenant then return end
  local field = TENANT_OF .. tenant
  if tonumber(redis.call('HINCRBYFLOAT', units_key, field, units)) < 1e-6 then
    redis.call('HDEL', units_key, field)
  end
end

-- Finish an in-flight job of `units` units: status, fields, final events, ack, counters,
-- retention, notification. fields: flat field/value list; events: flat kind/data list.
local function finish(job, ev, queue, units_key, entry_id, units, status, now, ttl, fields,
                      events, channel, job_id)
  redis.call('HSET', job, 'status', status, 'finished_at', now, unpack(fields))
  ack(queue, entry_id)
  redis.call('HINCRBYFLOAT', units_key, INFLIGHT, -units)
  redis.call('HINCRBY', units_key, status, 1)
  count_tenant(units_key, redis.call('HGET', job, 'tenant'), -units)
  for i = 1, #events, 2 do event(ev, events[i], events[i + 1]) end
  event(ev, 'status', status_event(status))
  redis.call('EXPIRE', job, ttl)
  redis.call('EXPIRE', ev, ttl)
  notify(channel, job_id)
end

-- Meter a finished job in its partition's usage bucket and totals, as `tenant|model|metric`:
-- the request by outcome, the engine's tokens, and its units (unless cancelled before it ran).
local function meter(bucket, total, ttl, job, status, units)
  local j = redis.call('HMGET', job, 'tenant', 'model', 'usage')
  if not j[1] then return end
  local prefix = j[1] .. '|' .. (j[2] or '') .. '|'
  local amounts = {{status, 1}}
  if status ~= S_CANCELLED or j[3] then table.insert(amounts, {'units', units}) end
  if j[3] then
    local usage = cjson.decode(j[3])
    table.insert(amounts, {'prompt_tokens', usage['prompt_tokens'] or 0})
    table.insert(amounts, {'completion_tokens', usage['completion_tokens'] or 0})
  end
  for _, key in ipairs({bucket, total}) do
    for _, pair in ipairs(amounts) do
      if pair[2] ~= 0 then redis.call('HINCRBYFLOAT', key, prefix .. pair[1], pair[2]) end
    end
  end
  redis.call('EXPIRE', bucket, ttl)
end

-- Fair sharing between the tenants of a class: a virtual token counter per partition.
-- A waiting job is a member of its queue's waiting set (all scores 0: ordered by bytes),
-- `<len(tenant)>:<tenant>:<seq>:<enqueued ms>:<units>:<job id>`: the length prefix makes each
-- tenant's members one range, the sequence keeps them in arrival order; the same member is in
-- the queue's arrival set, scored by the sequence (the queue's oldest job). The fair hash holds
-- `v:<class>:<tenant>` (the tenant's virtual counter: units served / weight), `n:<class>:<tenant>`
-- (its waiting jobs), `last:<class>` (the counter of the last tenant served), `seq`, and
-- `r:<tenant>` / `rt:<tenant>` (its reservation credit in units, and when that was last set, ms).

local function tenant_prefix(tenant)
  return #tenant .. ':' .. tenant .. ':'
end

local function class_of(qfield)
  return string.match(qfield, '^([^:]+)')
end

-- Put a job in its waiting set. A tenant that becomes active in the class gets its counter
-- lifted to (a hair below) the lowest active one, or the last served one when none is active,
-- so an idle tenant banks no credit.
-- Returns the member (the job's `entry` while it waits) and the wake message: `class:band`,
-- with `+` appended when the tenant joined other active tenants (workers visit that partition
-- next, however young its jobs: see PartitionView).
local function wait_job(waiting, order, fair, active, tenant, class, band, job_id, units)
  local seq = redis.call('HINCRBY', fair, 'seq', 1)
  local t = redis.call('TIME')
  local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local member = tenant_prefix(tenant) .. string.format('%016d', seq) .. ':' ..
    string.format('%d', ts) .. ':' .. units .. ':' .. job_id
  redis.call('ZADD', waiting, 0, member)
  redis.call('ZADD', order, seq, member)
  local wake = class .. ':' .. band
  if redis.call('HINCRBY', fair, 'n:' .. class .. ':' .. tenant, 1) == 1 then
    local vfield = 'v:' .. class .. ':' .. tenant
    local v = tonumber(redis.call('HGET', fair, vfield) or '0')
    local low = redis.call('ZRANGE', active, 0, 0, 'WITHSCORES')
    local floor = tonumber(low[2] or redis.call('HGET', fair, 'last:' .. class) or '0')
    if low[1] and floor >= v then  -- a hair below: a tie goes to the tenant that just arrived
      v = floor - 1e-9 - math.abs(floor) * 1e-12
    elseif floor > v then
      v = floor
    end
    redis.call('HSET', fair, vfield, v)
    if low[1] then wake = wake .. '+' end
    redis.call('ZADD', active, v, tenant)
  end
  return member, wake
end

-- Take a job's member out of its waiting set (claimed or cancelled); true if it was there.
local function unwait(waiting, order, fair, active, tenant, class, member)
  redis.call('ZREM', order, member)
  if redis.call('ZREM', waiting, member) == 0 then return false end
  local nfield = 'n:' .. class .. ':' .. tenant
  if redis.call('HINCRBY', fair, nfield, -1) <= 0 then
    redis.call('HDEL', fair, nfield)
    redis.call('ZREM', active, tenant)
  end
  return true
end

-- A waiting-set member as {member, job id, units, enqueued ms, units as sent, tenant}.
local function parse_member(member)
  local len, rest = string.match(member, '^(%d+):(.*)$')
  local ts, units, job_id = string.match(string.sub(rest, tonumber(len) + 2),
    '^%d+:(%d+):([^:]+):(.+)$')
  return {member, job_id, tonumber(units), tonumber(ts), units, string.sub(rest, 1, tonumber(len))}
end

-- The tenant's oldest member in a waiting set, or nil.
local function first_of(waiting, tenant)
  local p = tenant_prefix(tenant)
  return redis.call('ZRANGEBYLEX', waiting, '[' .. p, '(' .. p .. '\255', 'LIMIT', 0, 1)[1]
end

-- A reservation's credit at `now` (ms): it accrues at res[1] units/s up to res[2] units (the
-- burst); a job taken on credit may leave a debt that accrues back first.
local function credit(fair, tenant, res, now)
  local raw = redis.call('HMGET', fair, 'r:' .. tenant, 'rt:' .. tenant)
  local c, at = tonumber(raw[1] or res[2]), tonumber(raw[2] or now)
  if now > at then c = math.min(res[2], c + (now - at) * res[1] / 1000) end
  return c, math.max(now, at)
end

-- The job an earlier request made: the idempotency key's, or this one when its hash exists (a
-- job id made from its input, a batch line's, is queued once however often it is sent); nil
-- for a new job.
local function earlier(idem, job, job_id)
  if idem then
    local existing = redis.call('GET', idem)
    if existing then return existing end
  end
  if redis.call('EXISTS', job) == 1 then return job_id end
  return nil
end

-- The partition's waiting units (queued, and waiting for or in image preparation) when a job
-- of `cost` more would pass `ceiling`, else nil. A partition with nothing waiting takes any job.
local function past_ceiling(units_key, cost, ceiling)
  local held = redis.call('HMGET', units_key, QUEUED, PRE_UNITS)
  local queued = tonumber(held[1] or '0') + tonumber(held[2] or '0')
  if queued > 0.0001 and queued + cost > tonumber(ceiling) then return tostring(queued) end
  return nil
end

-- Returns {1, job_id}, {0, earlier job_id} on a replayed idempotency key, {-1, queued units}
-- when the partition is past its ceiling.
local function enqueue(keys, args)
  local k, a = K.iq_enqueue, A.iq_enqueue
  local idem, units_key, cost = keys[k.tail], keys[k.units], tonumber(args[a.cost])
  local before = earlier(idem, keys[k.job], args[a.job_id])
  if before then return {0, before} end
  local queued = past_ceiling(units_key, cost, args[a.ceiling])
  if queued then return {-1, queued} end
  local class, band = string.match(args[a.qfield], '^([^:]+):(.*)$')
  local member, wake = wait_job(keys[k.queue], keys[k.order], keys[k.fair], keys[k.active],
    args[a.tenant], class, band, args[a.job_id], args[a.cost])
  redis.call('HSET', keys[k.job], unpack(args, a.tail))
  redis.call('HSET', keys[k.job], 'entry', member)  -- over any `entry` the fields carry
  event(keys[k.events], 'status', status_event(S_QUEUED))
  count_queued(units_key, args[a.qfield], cost, 1)
  count_tenant(units_key, redis.call('HGET', keys[k.job], 'tenant'), cost)
  redis.call('HINCRBY', units_key, ARRIVALS, 1)
  redis.call('HINCRBYFLOAT', units_key, ARRIVED_UNITS, cost)
  notify(keys[k.wake], wake)
  if idem then redis.call('SET', idem, args[a.job_id], 'EX', tonumber(args[a.idem_ttl])) end
  return {1, args[a.job_id]}
end

-- Deliver the partition's best waiting jobs while they fit `room`, score no worse than `bound`
-- (the best another partition offers) and number fewer than `max_count`; an idle worker always
-- gets the best one, however large. The best queue is the one whose oldest job (any tenant's)
-- scores best: queue rank (class major, band minor) less its age in ageing periods; a batch
-- entry (rank >= `batch_from`) ages only within its class, never to a score a higher class's
-- entry has. Its class then serves one tenant: one with reservation credit for the model if
-- any has work in the class, else the active tenant with the lowest virtual counter; of that
-- tenant's jobs in the class, the best scoring one (its own oldest per band). Batch entries also fit
-- `batch_room` units and number at most `batch_slots` ('' = no cap: the worker's batch share).
-- A delivered job is added to its queue's stream and read by the consumer (the stream holds
-- only delivered entries: its pending list is the leases); its tenant's counter advances by
-- units / weight, or its credit by -units. Returns {picked: queue index (0-based), entry id,
-- job id, ...; the rank (0-based, -1 when empty) and enqueue time (ms) of the best job left; why
-- it stopped: 'count', 'empty', 'bound', 'room' or 'share'; the rank of a reserved tenant's
-- best job (-1: none waits) and when its credit is next positive (ms)}.
local function pick(keys, args)
  local k, a = K.iq_pick, A.iq_pick
  local now, ageing = tonumber(args[a.now_ms]), tonumber(args[a.ageing_ms])
  local room, max_count = tonumber(args[a.room]), tonumber(args[a.max_count])
  local idle, bound = args[a.idle] == '1', tonumber(args[a.bound])
  local batch_from, batch_room = tonumber(args[a.batch_from]), tonumber(args[a.batch_room])
  local batch_slots = tonumber(args[a.batch_slots])
  local weights, reserved = cjson.decode(args[a.weights]), cjson.decode(args[a.reserved])
  local fair, floor = keys[k.fair], batch_from - 0.5
  local nq = #args - a.tail + 1
  local fields, classes, class_at = {}, {}, {}
  for i = 1, nq do
    local qfield = args[a.tail + i - 1]
    fields[i] = JOBS_OF .. qfield
    local name = class_of(qfield)
    if #classes == 0 or classes[#classes].name ~= name then
      table.insert(classes, {name = name, first = i, last = i})
    else
      classes[#classes].last = i
    end
  end
  for ci, cl in ipairs(classes) do
    cl.active = keys[k.tail + 3 * nq + ci - 1]
    for i = cl.first, cl.last do class_at[i] = ci end
  end
  local counts = redis.call('HMGET', keys[k.units], unpack(fields))
  local cands = {}  -- per class: false (no work) or {tenant, reservation or false, heads by queue}
  local function candidate(ci)
    if cands[ci] ~= nil then return cands[ci] end
    local cl, any = classes[ci], false
    for i = cl.first, cl.last do any = any or tonumber(counts[i] or '0') > 0 end
    cands[ci] = false
    if not any then return false end
    local tenant, res, most = nil, false, nil
    for t, r in pairs(reserved) do
      if redis.call('HEXISTS', fair, 'n:' .. cl.name .. ':' .. t) == 1 then
        local c = credit(fair, t, r, now)
        if c > 0 and (most == nil or c / r[1] > most) then tenant, res, most = t, r, c / r[1] end
      end
    end
    for _ = 1, 8 do  -- a tenant counted active without a waiting job is dropped (never expected)
      tenant = tenant or redis.call('ZRANGE', cl.active, 0, 0)[1]
      if not tenant then return false end
      local heads, found = {}, false
      for i = cl.first, cl.last do
        local m = first_of(keys[k.tail + nq + i - 1], tenant)
        if m then heads[i], found = parse_member(m), true end
      end
      if found then
        cands[ci] = {tenant = tenant, res = res, heads = heads}
        return cands[ci]
      end
      redis.call('HDEL', fair, 'n:' .. cl.name .. ':' .. tenant)
      redis.call('ZREM', cl.active, tenant)
      tenant, res = nil, false
    end
    return false
  end
  local function score_of(i, h)
    local score = (i - 1) - (now - h[4]) / ageing
    if i - 1 >= batch_from and score < floor then score = floor end
    return score
  end
  local olds = {}  -- per queue: its oldest job (parsed) or false
  local function oldest(i)
    if olds[i] == nil then
      local m = tonumber(counts[i] or '0') > 0 and
        redis.call('ZRANGE', keys[k.tail + 2 * nq + i - 1], 0, 0)[1]
      olds[i] = m and parse_member(m) or false
    end
    return olds[i]
  end
  -- The best queue by its oldest job: index, score, that job.
  local function best()
    local bi, bs, bh = nil, nil, nil
    for i = 1, nq do
      local h = oldest(i)
      if h then
        local score = score_of(i, h)
        if bi == nil or score < bs then bi, bs, bh = i, score, h end
      end
    end
    return bi, bs, bh
  end
  -- The job the best queue's class serves now: queue index and job (its tenant's best).
  local function served(qi, old)
    local ci = class_at[qi]
    local cand, ji, jh, js = candidate(ci), qi, old, nil
    if not cand then return ji, jh, nil end
    for i = classes[ci].first, classes[ci].last do
      local h = cand.heads[i]
      if h and (js == nil or score_of(i, h) < js) then ji, jh, js = i, h, score_of(i, h) end
    end
    return ji, jh, cand
  end
  local picked, n, stop = {}, 0, 'count'
  while n < max_count do
    local qi, score, old = best()
    if qi == nil then stop = 'empty' break end
    if bound and score > bound then stop = 'bound' break end
    local i, h, cand = served(qi, old)
    if h[3] > room and not (idle and n == 0) then stop = 'room' break end
    local batch = i - 1 >= batch_from
    if batch and not (idle and n == 0) and ((batch_room and h[3] > batch_room)
        or (batch_slots and batch_slots < 1)) then
      stop = 'share' break
    end
    if batch and batch_room then batch_room = batch_room - h[3] end
    if batch and batch_slots then batch_slots = batch_slots - 1 end
    local ci, tenant, stream = class_at[i], h[6], keys[k.tail + i - 1]
    local cl = classes[ci]
    ensure_group(stream)
    local entry_id = redis.call('XADD', stream, '*', 'job', h[2], 'units', h[5])
    redis.call('XREADGROUP', 'GROUP', GROUP, args[a.consumer], 'COUNT', 1, 'STREAMS', stream, '>')
    unwait(keys[k.tail + nq + i - 1], keys[k.tail + 2 * nq + i - 1], fair, cl.active, tenant,
      cl.name, h[1])
    if cand and cand.res then
      local c, at = credit(fair, tenant, cand.res, now)
      redis.call('HSET', fair, 'r:' .. tenant, c - h[3], 'rt:' .. tenant, at)
    else
      local v = redis.call('HINCRBYFLOAT', fair, 'v:' .. cl.name .. ':' .. tenant,
        h[3] / (weights[tenant] or 1))
      redis.call('HSET', fair, 'last:' .. cl.name, v)
      redis.call('ZADD', cl.active, 'XX', v, tenant)
    end
    cands[ci], olds[i] = nil, nil
    table.insert(picked, i - 1)
    table.insert(picked, entry_id)
    table.insert(picked, h[2])
    room, n = room - h[3], n + 1
  end
  -- When a reserved tenant waiting here next has credit: the rank of its best job (its
  -- highest class's first queue holding one of its jobs) and that time (ms), or -1. Workers
  -- visit the partition then, so credit is spent where it accrues (see PartitionView).
  local due_rank, due = -1, 0
  for t, r in pairs(reserved) do
    for _, cl in ipairs(classes) do
      local qi = nil
      if redis.call('HEXISTS', fair, 'n:' .. cl.name .. ':' .. t) == 1 then
        for i = cl.first, cl.last do
          if not qi and first_of(keys[k.tail + nq + i - 1], t) then qi = i end
        end
      end
      if qi then
        local c = credit(fair, t, r, now)
        local at = c > 0 and now or now + math.floor(-c * 1000 / r[1]) + 1
        if due_rank < 0 or at < due or (at == due and qi - 1 < due_rank) then
          due_rank, due = qi - 1, at
        end
        break
      end
    end
  end
  local i, _, h = best()
  if i == nil then return {picked, -1, '0', stop, -1, '0'} end
  return {picked, i - 1, string.format('%d', h[4]), stop, due_rank, string.format('%d', due)}
end

-- Deliver entries idle past their lease; returns picked triples as pick does.
local function reclaim(keys, args)
  local k, a = K.iq_reclaim, A.iq_reclaim
  local max_count, picked, n = tonumber(args[a.max_count]), {}, 0
  for i = k.tail, #keys do
    if n >= max_count then break end
    local queue = keys[i]
    if redis.call('EXISTS', queue) == 1 then
      local res = redis.call('XAUTOCLAIM', queue, GROUP, args[a.consumer], args[a.min_idle_ms],
        '0-0', 'COUNT', max_count - n)
      for _, entry in ipairs(res[2]) do
        local id, f, job_id = entry[1], entry[2], nil
        for j = 1, #f, 2 do if f[j] == 'job' then job_id = f[j + 1] end end
        if job_id then
          table.insert(picked, i - k.tail)
          table.insert(picked, id)
          table.insert(picked, job_id)
          n = n + 1
        else
          ack(queue, id)
        end
      end
    end
  end
  return picked
end

-- Take delivered entries: count the attempt, then drop (finished), cancel, dead-letter, or
-- mark running. A job still `queued` moves from the queued counters to in-flight here.
-- Returns the hashes of the jobs now running.
local function take(keys, args)
  local k, a = K.iq_take, A.iq_take
  local units_key, channel, consumer = keys[k.units], keys[k.channel], args[a.consumer]
  local now, ttl, max_deliveries = args[a.now], tonumber(args[a.ttl]), tonumber(args[a.max_deliveries])
  local taken, moved, order, total = {}, {}, {}, 0
  for i = 0, (#keys - k.tail + 1) / 3 - 1 do
    local queue, job, ev = keys[k.tail + 3 * i], keys[k.tail + 3 * i + 1], keys[k.tail + 3 * i + 2]
    local entry_id, job_id = args[a.tail + 2 * i], args[a.tail + 2 * i + 1]
    local cur = redis.call('HMGET', job, 'status', 'estimated_units', 'job_class', 'band', 'cancel')
    if not cur[1] or TERMINAL[cur[1]] then
      ack(queue, entry_id)
    else
      local units = tonumber(cur[2] or '0')
      if cur[1] == S_QUEUED then  -- counted once per queue at the end, not per job
        local qfield = cur[3] .. ':' .. cur[4]
        if not moved[qfield] then moved[qfield] = {0, 0}; table.insert(order, qfield) end
        moved[qfield][1], moved[qfield][2] = moved[qfield][1] + units, moved[qfield][2] + 1
        total = total + units
      end
      local attempts = redis.call('HINCRBY', job, 'attempts', 1)
      if cur[5] == '1' then
        finish(job, ev, queue, units_key, entry_id, units, S_CANCELLED, now, ttl,
          {'error', 'cancelled before it ran'}, {}, channel, job_id)
        meter(keys[k.usage], keys[k.usage_total], args[a.usage_ttl], job, S_CANCELLED, units)
      elseif attempts > max_deliveries then
        local reason = 'dead-lettered: delivered ' .. (attempts - 1) ..
          ' times without completing (its workers crashed or lost their lease)'
        redis.call('XADD', keys[k.dead], 'MAXLEN', '~', 100000, '*', 'job', job_id,
          'queue', queue, 'attempts', attempts - 1, 'reason', reason)
        finish(job, ev, queue, units_key, entry_id, units, S_FAILED, now, ttl,
          {'error', reason}, {'error', cjson.encode({message = reason})}, channel, job_id)
        meter(keys[k.usage], keys[k.usage_total], args[a.usage_ttl], job, S_FAILED, units)
      else
        redis.call('HSET', job, 'status', S_RUNNING, 'worker', consumer, 'started_at', now,
          'stream', queue, 'entry', entry_id)
        event(ev, 'status', status_event(S_RUNNING, '"attempt":' .. attempts))
        notify(channel, job_id)
        table.insert(taken, redis.call('HGETALL', job))
      end
    end
  end
  for _, qfield in ipairs(order) do count_queued(units_key, qfield, -moved[qfield][1], -moved[qfield][2]) end
  if total > 0 then redis.call('HINCRBYFLOAT', units_key, INFLIGHT, total) end
  return taken
end

-- Returns {indexes of jobs whose lease this consumer lost, indexes of jobs asked to cancel}.
local function renew(keys, args)
  local k, a = K.iq_renew, A.iq_renew
  local consumer, lost, cancelled = args[a.consumer], {}, {}
  for i = 0, (#keys - k.tail + 1) / 2 - 1 do
    local queue, job, entry_id = keys[k.tail + 2 * i], keys[k.tail + 2 * i + 1], args[a.tail + i]
    local p = redis.call('XPENDING', queue, GROUP, entry_id, entry_id, 1)
    if #p == 0 or p[1][2] ~= consumer then
      table.insert(lost, i)
    else
      redis.call('XCLAIM', queue, GROUP, consumer, 0, entry_id, 'JUSTID')
      if redis.call('HGET', job, 'cancel') == '1' then table.insert(cancelled, i) end
    end
  end
  return {lost, cancelled}
end

-- Returns 0 if this worker no longer owns the job, 2 if cancel was asked, else 1.
local function emit(keys, args)
  local k, a = K.iq_emit, A.iq_emit
  local owner = redis.call('HMGET', keys[k.job], 'worker', 'status', 'cancel')
  if owner[1] ~= args[a.consumer] or owner[2] ~= S_RUNNING then return 0 end
  for i = a.tail, #args, 2 do event(keys[k.events], args[i], args[i + 1]) end
  notify(keys[k.channel], args[a.job_id])
  if owner[3] == '1' then return 2 end
  return 1
end

-- A non-empty share (completion tokens / max_tokens) moves the tenant's moving average.
-- Returns 1 on success, 0 if already finished (no-op), -1 if another worker owns it.
local function complete(keys, args)
  local k, a = K.iq_complete, A.iq_complete
  local job, queue = keys[k.job], keys[k.queue]
  local current = redis.call('HMGET', job, 'status', 'worker', 'estimated_units')
  if not current[1] or TERMINAL[current[1]] then
    ack(queue, args[a.entry])
    return 0
  end
  if current[2] ~= args[a.consumer] then return -1 end
  local nfields = tonumber(args[a.nfields])
  local fields = {unpack(args, a.tail, a.tail + nfields * 2 - 1)}
  local events = {unpack(args, a.tail + nfields * 2)}
  finish(job, keys[k.events], queue, keys[k.units], args[a.entry], tonumber(current[3] or '0'),
    args[a.status], args[a.now], tonumber(args[a.ttl]), fields, events, keys[k.channel],
    args[a.job_id])
  meter(keys[k.usage], keys[k.usage_total], args[a.usage_ttl], job, args[a.status],
    tonumber(current[3] or '0'))
  if args[a.share] ~= '' then
    local share, alpha = tonumber(args[a.share]), tonumber(args[a.alpha])
    local old = tonumber(redis.call('HGET', keys[k.shares], args[a.tenant]))
    if old then share = old + alpha * (share - old) end
    redis.call('HSET', keys[k.shares], args[a.tenant], tostring(share))
  end
  return 1
end

-- A graceful release does not count as a delivery. Returns 1, or 0 when not ours to release.
local function release(keys, args)
  local k, a = K.iq_release, A.iq_release
  local job, queue, units_key = keys[k.job], keys[k.queue], keys[k.units]
  local current = redis.call('HMGET', job, 'status', 'worker', 'estimated_units', 'job_class', 'band',
    'tenant')
  if current[1] ~= S_RUNNING or current[2] ~= args[a.consumer] then return 0 end
  local units, qfield = tonumber(current[3]), current[4] .. ':' .. current[5]
  ack(queue, args[a.entry])
  local member, wake = wait_job(keys[k.waiting], keys[k.order], keys[k.fair], keys[k.active],
    current[6], current[4], current[5],
    args[a.job_id], current[3])
  redis.call('HSET', job, 'status', S_QUEUED, 'worker', '', 'stream', keys[k.waiting], 'entry', member)
  if args[a.graceful] == '1' then redis.call('HINCRBY', job, 'attempts', -1) end
  redis.call('HINCRBYFLOAT', units_key, INFLIGHT, -units)
  count_queued(units_key, qfield, units, 1)
  event(keys[k.events], 'status', status_event(S_QUEUED, '"reason":' .. cjson.encode(args[a.reason])))
  notify(keys[k.wake], wake)
  notify(keys[k.channel], args[a.job_id])
  return 1
end

-- Returns the status after the call: cancelled, cancelling, the terminal status, or 'moved'
-- when a queued job is no longer in `queue` (read it again and retry).
local function cancel(keys, args)
  local k, a = K.iq_cancel, A.iq_cancel
  local job, ev = keys[k.job], keys[k.events]
  local cur = redis.call('HMGET', job, 'status', 'entry', 'estimated_units', 'job_class', 'band',
    'stage', 'tenant', 'stream')
  local status = cur[1]
  if not status then return false end
  if status == S_QUEUED then
    -- The caller read the job before: it may have moved on since (handed on, released).
    if cur[8] and cur[8] ~= keys[k.queue] then return 'moved' end
    if cur[6] == 'pre' then  -- waiting for (or in) the preprocess tier: `queue` is its stream
      redis.call('XDEL', keys[k.queue], cur[2])
      count_pre(keys[k.units], -tonumber(cur[3]), -1)
    else  -- `queue` is its waiting set
      unwait(keys[k.queue], keys[k.order], keys[k.fair], keys[k.active], cur[7], cur[4], cur[2])
      count_queued(keys[k.units], cur[4] .. ':' .. cur[5], -tonumber(cur[3]), -1)
    end
    count_tenant(keys[k.units], cur[7], -tonumber(cur[3]))
    redis.call('HINCRBY', keys[k.units], S_CANCELLED, 1)
    redis.call('HSET', job, 'status', S_CANCELLED, 'finished_at', args[a.now],
      'error', 'cancelled before it ran')
    meter(keys[k.usage], keys[k.usage_total], args[a.usage_ttl], job, S_CANCELLED, 0)
    event(ev, 'status', status_event(S_CANCELLED))
    redis.call('EXPIRE', job, tonumber(args[a.ttl]))
    redis.call('EXPIRE', ev, tonumber(args[a.ttl]))
    notify(keys[k.channel], args[a.job_id])
    return S_CANCELLED
  end
  if status == S_RUNNING then
    redis.call('HSET', job, 'cancel', '1')
    notify(keys[k.cancel_channel], args[a.job_id])
    return 'cancelling'
  end
  return status
end

-- Record finished batch lines, each once (its bit in `written` decides): the line's JSON goes
-- to the output or error list, and its count and tokens to the batch's.
-- ARGV tail: line, 'out'|'err', json, prompt tokens, completion tokens, ...
local function batch_record(keys, args)
  local k, a = K.iq_batch_record, A.iq_batch_record
  local added = {out = 0, err = 0}
  local lists = {out = keys[k.outputs], err = keys[k.errors]}
  local input, output = 0, 0
  for i = a.tail, #args, 5 do
    local kind = args[i + 1]
    if redis.call('SETBIT', keys[k.written], tonumber(args[i]), 1) == 0 then
      redis.call('RPUSH', lists[kind], args[i + 2])
      added[kind] = added[kind] + 1
      input, output = input + tonumber(args[i + 3]), output + tonumber(args[i + 4])
    end
  end
  local batch = keys[k.batch]
  if added.out > 0 then redis.call('HINCRBY', batch, 'completed', added.out) end
  if added.err > 0 then redis.call('HINCRBY', batch, 'failed', added.err) end
  if input > 0 then redis.call('HINCRBY', batch, 'input_tokens', input) end
  if output > 0 then redis.call('HINCRBY', batch, 'output_tokens', output) end
  return {added.out, added.err}
end

-- Move a batch to status `to` if its status is one of `from` (comma separated), setting the
-- field/value pairs of the tail with it. Returns {1, to} or {0, the status it has}.
local function batch_move(keys, args)
  local k, a = K.iq_batch_move, A.iq_batch_move
  local current = redis.call('HGET', keys[k.batch], 'status')
  if not current then return {0, ''} end
  for status in string.gmatch(args[a.from_], '[^,]+') do
    if status == current then
      redis.call('HSET', keys[k.batch], 'status', args[a.to], unpack(args, a.tail))
      return {1, args[a.to]}
    end
  end
  return {0, current}
end

-- Take or keep a lease: set `token` for `ttl_ms` if the lease is free or already ours
-- (a `ttl_ms` of 0 gives it up).
local function lease(keys, args)
  local k, a = K.iq_lease, A.iq_lease
  local holder = redis.call('GET', keys[k.lease])
  if holder and holder ~= args[a.token] then return 0 end
  local ttl = tonumber(args[a.ttl_ms])
  if ttl <= 0 then
    redis.call('DEL', keys[k.lease])
  else
    redis.call('SET', keys[k.lease], args[a.token], 'PX', ttl)
  end
  return 1
end

-- The preprocess tier. A job with images is stored with `stage` 'pre' and waits in its
-- partition's preprocess stream (status queued, counted under the pre_ counters) until a
-- preprocess worker holds it (`worker`, deliveries in `pre_attempts`) and hands it on.

-- As enqueue, into the preprocess stream.
local function prequeue(keys, args)
  local k, a = K.iq_prequeue, A.iq_prequeue
  local idem, units_key, cost = keys[k.tail], keys[k.units], tonumber(args[a.cost])
  local before = earlier(idem, keys[k.job], args[a.job_id])
  if before then return {0, before} end
  local queued = past_ceiling(units_key, cost, args[a.ceiling])
  if queued then return {-1, queued} end
  ensure_group(keys[k.queue])
  local entry_id = redis.call('XADD', keys[k.queue], '*', 'job', args[a.job_id], 'units', args[a.cost])
  redis.call('HSET', keys[k.job], unpack(args, a.tail))
  redis.call('HSET', keys[k.job], 'entry', entry_id, 'stage', 'pre')  -- over the fields' own
  event(keys[k.events], 'status', status_event(S_QUEUED))
  count_pre(units_key, cost, 1)
  count_tenant(units_key, redis.call('HGET', keys[k.job], 'tenant'), cost)
  redis.call('HINCRBY', units_key, ARRIVALS, 1)
  redis.call('HINCRBYFLOAT', units_key, ARRIVED_UNITS, cost)
  notify(keys[k.wake], args[a.model])
  if idem then redis.call('SET', idem, args[a.job_id], 'EX', tonumber(args[a.idem_ttl])) end
  return {1, args[a.job_id]}
end

-- Deliver up to `max_count` undelivered entries of one partition's preprocess streams, in
-- the order of the keys (class order); returns picked triples as pick does.
local function pre_pick(keys, args)
  local k, a = K.iq_pre_pick, A.iq_pre_pick
  local left, picked = tonumber(args[a.max_count]), {}
  for i = k.tail, #keys do
    if left <= 0 then break end
    if redis.call('EXISTS', keys[i]) == 1 then
      local res = redis.call('XREADGROUP', 'GROUP', GROUP, args[a.consumer], 'COUNT', left,
        'STREAMS', keys[i], '>')
      for _, entry in ipairs(res and res[1][2] or {}) do
        local id, f, job_id = entry[1], entry[2], nil
        for j = 1, #f, 2 do if f[j] == 'job' then job_id = f[j + 1] end end
        if job_id then
          table.insert(picked, i - k.tail)
          table.insert(picked, id)
          table.insert(picked, job_id)
          left = left - 1
        else
          ack(keys[i], id)
        end
      end
    end
  end
  return picked
end

-- A held preprocess job fails with `reason`: it never reached its model queue.
local function fail_pre(job, ev, queue, units_key, entry_id, units, now, ttl, reason, channel,
                        job_id, code)
  redis.call('HSET', job, 'status', S_FAILED, 'finished_at', now, 'error', reason)
  if code ~= '' then redis.call('HSET', job, 'error_code', code) end
  redis.call('HDEL', job, 'stage')
  ack(queue, entry_id)
  count_pre(units_key, -units, -1)
  count_tenant(units_key, redis.call('HGET', job, 'tenant'), -units)
  redis.call('HINCRBY', units_key, S_FAILED, 1)
  event(ev, 'error', cjson.encode({message = reason}))
  event(ev, 'status', status_event(S_FAILED))
  redis.call('EXPIRE', job, ttl)
  redis.call('EXPIRE', ev, ttl)
  notify(channel, job_id)
end

-- Hold delivered preprocess entries: drop those no longer waiting for preparation (cancelled,
-- finished, handed on), dead-letter those delivered too often. Returns the held jobs' hashes.
local function pre_take(keys, args)
  local k, a = K.iq_pre_take, A.iq_pre_take
  local units_key, channel, consumer = keys[k.units], keys[k.channel], args[a.consumer]
  local now, ttl, max_deliveries = args[a.now], tonumber(args[a.ttl]), tonumber(args[a.max_deliveries])
  local taken = {}
  for i = 0, (#keys - k.tail + 1) / 3 - 1 do
    local queue, job, ev = keys[k.tail + 3 * i], keys[k.tail + 3 * i + 1], keys[k.tail + 3 * i + 2]
    local entry_id, job_id = args[a.tail + 2 * i], args[a.tail + 2 * i + 1]
    local cur = redis.call('HMGET', job, 'status', 'stage', 'estimated_units')
    if cur[1] ~= S_QUEUED or cur[2] ~= 'pre' then
      ack(queue, entry_id)
    else
      local attempts = redis.call('HINCRBY', job, 'pre_attempts', 1)
      if attempts > max_deliveries then
        local reason = 'dead-lettered: delivered ' .. (attempts - 1) .. ' times to the ' ..
          'preprocess tier without finishing (its workers crashed or lost their lease)'
        redis.call('XADD', keys[k.dead], 'MAXLEN', '~', 100000, '*', 'job', job_id,
          'queue', queue, 'attempts', attempts - 1, 'reason', reason)
        fail_pre(job, ev, queue, units_key, entry_id, tonumber(cur[3] or '0'), now, ttl, reason,
          channel, job_id, '')
        meter(keys[k.usage], keys[k.usage_total], args[a.usage_ttl], job, S_FAILED, 0)
      else
        redis.call('HSET', job, 'worker', consumer)
        table.insert(taken, redis.call('HGETALL', job))
      end
    end
  end
  return taken
end

-- Returns 1 when failed, 0 when no longer held for preparation (no-op), -1 when not ours.
local function pre_fail(keys, args)
  local k, a = K.iq_pre_fail, A.iq_pre_fail
  local job = keys[k.job]
  local cur = redis.call('HMGET', job, 'status', 'stage', 'worker', 'estimated_units')
  if cur[1] ~= S_QUEUED or cur[2] ~= 'pre' then
    ack(keys[k.queue], args[a.entry])
    return 0
  end
  if cur[3] ~= args[a.consumer] then return -1 end
  fail_pre(job, keys[k.events], keys[k.queue], keys[k.units], args[a.entry],
    tonumber(cur[4] or '0'), args[a.now], tonumber(args[a.ttl]), args[a.reason], keys[k.channel],
    args[a.job_id], args[a.code])
  meter(keys[k.usage], keys[k.usage_total], args[a.usage_ttl], job, S_FAILED, 0)
  return 1
end

-- The hand-off: ack the preprocess entry, rewrite the job (prepared images, units, band,
-- prompt tokens), put it in its model queue's waiting set (`queue`) as enqueue does, with the
-- counters moved, renew the prepared images'
-- TTL, wake the model's workers. Returns 1, 0 when no longer held for preparation (cancelled
-- or already handed on: a no-op), -1 when another worker holds it.
local function handoff(keys, args)
  local k, a = K.iq_handoff, A.iq_handoff
  local job, pre, units_key = keys[k.job], keys[k.pre], keys[k.units]
  local cur = redis.call('HMGET', job, 'status', 'stage', 'worker', 'estimated_units', 'tenant')
  if cur[1] ~= S_QUEUED or cur[2] ~= 'pre' then
    ack(pre, args[a.entry])
    return 0
  end
  if cur[3] ~= args[a.consumer] then return -1 end
  local before, cost = tonumber(cur[4] or '0'), tonumber(args[a.cost])
  ack(pre, args[a.entry])
  count_pre(units_key, -before, -1)
  count_tenant(units_key, cur[5], cost - before)
  redis.call('HINCRBYFLOAT', units_key, ARRIVED_UNITS, cost - before)
  local class, band = string.match(args[a.qfield], '^([^:]+):(.*)$')
  local member, wake = wait_job(keys[k.queue], keys[k.order], keys[k.fair], keys[k.active],
    cur[5], class, band, args[a.job_id], args[a.cost])
  redis.call('HSET', job, 'stream', keys[k.queue], 'entry', member, 'worker', '',
    unpack(args, a.tail))
  redis.call('HDEL', job, 'stage', 'pre_attempts')
  count_queued(units_key, args[a.qfield], cost, 1)
  for i = k.tail, #keys do redis.call('EXPIRE', keys[i], tonumber(args[a.ttl])) end
  notify(keys[k.wake], wake)
  return 1
end

redis.register_function('iq_enqueue', enqueue)
redis.register_function('iq_pick', pick)
redis.register_function('iq_reclaim', reclaim)
redis.register_function('iq_take', take)
redis.register_function('iq_renew', renew)
redis.register_function('iq_emit', emit)
redis.register_function('iq_complete', complete)
redis.register_function('iq_release', release)
redis.register_function('iq_cancel', cancel)
redis.register_function('iq_batch_record', batch_record)
redis.register_function('iq_batch_move', batch_move)
redis.register_function('iq_lease', lease)
redis.register_function('iq_prequeue', prequeue)
redis.register_function('iq_pre_pick', pre_pick)
redis.register_function('iq_pre_take', pre_take)
redis.register_function('iq_pre_fail', pre_fail)
redis.register_function('iq_handoff', handoff)

-- A tenant's token buckets (README, "Rate limits"): requests and units per minute ('' =
-- unlimited), refilled continuously, empty-to-full in a minute, read on the server's clock.
-- Both are charged, or neither. A charge larger than a whole bucket passes when the bucket is
-- full and leaves it in debt: a large job is slowed, never refused for good. No charge only
-- reads. Returns {1 charged or 0 refused, the bucket that refused ('requests' | 'tokens' |
-- ''), ms until the charge would pass; per bucket: level ('' unlimited), ms until full}.
local function ratelimit(keys, args)
  local k, a = K.iq_ratelimit, A.iq_ratelimit
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  local raw = redis.call('HMGET', keys[k.bucket], 'r', 'r_at', 'u', 'u_at')
  local buckets = {
    {name = 'requests', field = 'r', cap = tonumber(args[a.requests_per_minute]),
     cost = tonumber(args[a.requests]), level = tonumber(raw[1]), at = tonumber(raw[2])},
    {name = 'tokens', field = 'u', cap = tonumber(args[a.units_per_minute]),
     cost = tonumber(args[a.units]), level = tonumber(raw[3]), at = tonumber(raw[4])},
  }
  local refused, wait, charging = '', 0, false
  for _, b in ipairs(buckets) do
    if b.cap then
      b.rate = b.cap / 60000
      if b.level and b.at then
        b.level = math.min(b.cap, b.level + math.max(0, now - b.at) * b.rate)
      else
        b.level = b.cap
      end
      local need = math.min(b.cost, b.cap)
      if b.cost > 0 and b.level < need then
        local ms = math.ceil((need - b.level) / b.rate)
        if ms > wait then refused, wait = b.name, ms end
      end
      charging = charging or b.cost > 0
    end
  end
  charging = charging and refused == ''
  local out, ttl, fields = {refused == '' and 1 or 0, refused, wait}, 0, {}
  for _, b in ipairs(buckets) do
    if b.cap then
      if charging then
        b.level = b.level - b.cost
        table.insert(fields, b.field); table.insert(fields, tostring(b.level))
        table.insert(fields, b.field .. '_at'); table.insert(fields, now)
      end
      local full = math.max(0, math.ceil((b.cap - b.level) / b.rate))
      if full > ttl then ttl = full end
      table.insert(out, tostring(b.level)); table.insert(out, full)
    else
      table.insert(out, ''); table.insert(out, 0)
    end
  end
  if charging then
    redis.call('HSET', keys[k.bucket], unpack(fields))
    redis.call('PEXPIRE', keys[k.bucket], ttl + 1000)  -- gone = full
  end
  return out
end

redis.register_function('iq_ratelimit', ratelimit)
