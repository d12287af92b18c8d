#!lua name=inferq
-- inferq's server-side functions: each queue transition is one atomic step.
-- Job and event keys come from templates passed by queueing/keys.py (ARGV), so every
-- key name still lives in one Python module.

local GROUP = 'workers'
local TERMINAL = {succeeded = true, failed = true, cancelled = true}

local function event(ev, kind, data)
  return redis.call('XADD', ev, '*', 'type', kind, 'data', data)
end

local function status_event(status, extra)
  local body = '{"status":"' .. status .. '"'
  if extra then body = body .. ',' .. extra end
  return body .. '}'
end

local function notify(channel, job_id)
  redis.call('PUBLISH', channel, job_id)
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

-- Finish a job of `units` estimated units: status, fields, final events, ack, counters, retention.
-- fields: flat list of hash fields to set; events: flat list of kind, data.
local function finish(job, ev, queue, units_key, entry_id, units, status, now, ttl, fields, events,
                      channel, job_id)
  redis.call('HSET', job, 'status', status, 'finished_at', now, unpack(fields))
  ack(queue, entry_id)
  redis.call('HINCRBYFLOAT', units_key, 'inflight', -units)
  redis.call('HINCRBY', units_key, status, 1)
  for i = 1, #events, 2 do event(ev, events[i], events[i + 1]) end
  event(ev, 'status', status_event(status))
  redis.call('EXPIRE', job, ttl)
  redis.call('EXPIRE', ev, ttl)
  notify(channel, job_id)
end

-- enqueue: KEYS job, ev, queue, units, wake, idem|''
-- ARGV job_id, units, queue_field, ceiling, idem_ttl, now, channel, field, value, ...
local function enqueue(keys, args)
  local job, ev, queue, units_key, wake, idem = keys[1], keys[2], keys[3], keys[4], keys[5], keys[6]
  local job_id, units, qfield = args[1], tonumber(args[2]), args[3]
  local ceiling = tonumber(args[4])
  if idem ~= '' then
    local existing = redis.call('GET', idem)
    if existing then return {0, existing} end
  end
  local queued = tonumber(redis.call('HGET', units_key, 'queued') or '0')
  if queued > 0.0001 and queued + units > ceiling then
    return {-1, tostring(queued)}
  end
  ensure_group(queue)
  redis.call('HSET', job, unpack(args, 8))
  local entry_id = redis.call('XADD', queue, '*', 'job', job_id, 'units', args[2])
  redis.call('HSET', job, 'stream', queue, 'entry', entry_id)
  event(ev, 'status', status_event('queued'))
  redis.call('HINCRBYFLOAT', units_key, 'queued', units)
  redis.call('HINCRBYFLOAT', units_key, 'u:' .. qfield, units)
  redis.call('HINCRBY', units_key, 'n:' .. qfield, 1)
  redis.call('HINCRBY', units_key, 'arrivals', 1)
  redis.call('HINCRBYFLOAT', units_key, 'arrived_units', units)
  if redis.call('LLEN', wake) < 1024 then redis.call('RPUSH', wake, '1') end
  if idem ~= '' then redis.call('SET', idem, job_id, 'EX', tonumber(args[5])) end
  return {1, job_id}
end

-- A reader over a queue's undelivered entries (after the group's last-delivered id), or false.
-- Entries are read ahead in growing chunks, so a claim reads each queue's group info once.
local function cursor(queue)
  if redis.call('EXISTS', queue) == 0 then return false end
  local last = '0-0'
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', queue)) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == GROUP then last = info['last-delivered-id'] end
  end
  return {queue = queue, after = last, rows = {}, pos = 1, chunk = 4, drained = false}
end

-- The cursor's next undelivered entry: {entry_id, job_id, units, ts_ms}, or nil.
-- `want` bounds how many entries a refill reads.
local function head(c, want)
  if c.pos > #c.rows then
    if c.drained then return nil end
    local n = math.max(1, math.min(c.chunk, want))
    local rows = redis.call('XRANGE', c.queue, '(' .. c.after, '+', 'COUNT', n)
    c.drained, c.rows, c.pos, c.chunk = #rows < n, {}, 1, c.chunk * 4
    for i, row in ipairs(rows) do
      local id, f = row[1], row[2]
      local fields = {}
      for j = 1, #f, 2 do fields[f[j]] = f[j + 1] end
      c.rows[i] = {id, fields['job'], tonumber(fields['units']), tonumber(string.match(id, '^(%d+)'))}
    end
    if #rows == 0 then return nil end
    c.after = rows[#rows][1]
  end
  return c.rows[c.pos]
end

-- Units moved from queued to in-flight by one claim, applied to the counters once at its end.
local function move(ctx, qfield, units)
  local m = ctx.moved
  if not m.by[qfield] then
    m.by[qfield] = {0, 0}
    table.insert(m.order, qfield)
  end
  m.by[qfield][1] = m.by[qfield][1] + units
  m.by[qfield][2] = m.by[qfield][2] + 1
  m.units = m.units + units
end

local function apply_moves(ctx)
  local m = ctx.moved
  if #m.order == 0 then return end
  redis.call('HINCRBYFLOAT', ctx.units_key, 'queued', -m.units)
  for _, qfield in ipairs(m.order) do
    redis.call('HINCRBYFLOAT', ctx.units_key, 'u:' .. qfield, -m.by[qfield][1])
    redis.call('HINCRBY', ctx.units_key, 'n:' .. qfield, -m.by[qfield][2])
  end
  redis.call('HINCRBYFLOAT', ctx.units_key, 'inflight', m.units)
end

-- Take a delivered entry: count the attempt, dead-letter or cancel, else mark it running.
-- ctx: job_t, ev_t, units_key, consumer, now, ttl, max_deliveries, channel, dead
local function take(ctx, queue, entry_id, job_id, fresh)
  local job = string.format(ctx.job_t, job_id)
  local ev = string.format(ctx.ev_t, job_id)
  local cur = redis.call('HMGET', job, 'status', 'estimated_units', 'job_class', 'band', 'cancel')
  local status = cur[1]
  if not status or TERMINAL[status] then
    ack(queue, entry_id)
    return false
  end
  local units = tonumber(cur[2] or '0')
  if fresh then move(ctx, cur[3] .. ':' .. cur[4], units) end
  local attempts = redis.call('HINCRBY', job, 'attempts', 1)
  if cur[5] == '1' then
    finish(job, ev, queue, ctx.units_key, entry_id, units, 'cancelled', ctx.now, ctx.ttl,
      {'error', 'cancelled before it ran'}, {}, ctx.channel, job_id)
    return false
  end
  if attempts > ctx.max_deliveries then
    local reason = 'dead-lettered: delivered ' .. (attempts - 1) ..
      ' times without completing (its workers crashed or lost their lease)'
    redis.call('XADD', ctx.dead, 'MAXLEN', '~', 100000, '*', 'job', job_id,
      'queue', queue, 'attempts', attempts - 1, 'reason', reason)
    finish(job, ev, queue, ctx.units_key, entry_id, units, 'failed', ctx.now, ctx.ttl,
      {'error', reason}, {'error', cjson.encode({message = reason})}, ctx.channel, job_id)
    return false
  end
  redis.call('HSET', job, 'status', 'running', 'worker', ctx.consumer, 'started_at', ctx.now)
  event(ev, 'status', status_event('running', '"attempt":' .. attempts))
  notify(ctx.channel, job_id)
  return redis.call('HGETALL', job)
end

local function context(args)
  return {
    consumer = args[1], now = args[2], ttl = tonumber(args[3]),
    max_deliveries = tonumber(args[4]), job_t = args[5], ev_t = args[6],
    channel = args[7], dead = args[8], moved = {units = 0, by = {}, order = {}}
  }
end

-- claim: KEYS units, wake, queue... (priority order: class major, band minor)
-- ARGV consumer, now_s, ttl, max_deliveries, job_t, ev_t, channel, dead,
--      ageing_ms, room, max_count, idle
local function claim(keys, args)
  local ctx = context(args)
  ctx.units_key = keys[1]
  local now, ageing = tonumber(args[2]) * 1000, tonumber(args[9])
  local room, max_count, idle = tonumber(args[10]), tonumber(args[11]), args[12] == '1'
  local cursors, claimed = {}, {}
  for i = 3, #keys do cursors[i] = cursor(keys[i]) end
  while #claimed < max_count do
    local best, best_score, h = nil, nil, nil
    for i = 3, #keys do
      local head_i = cursors[i] and head(cursors[i], max_count - #claimed)
      if head_i then
        local score = (i - 3) - (now - head_i[4]) / ageing
        if best == nil or score < best_score then best, best_score, h = i, score, head_i end
      end
    end
    if best == nil then
      if #claimed == 0 then redis.call('DEL', keys[2]) end
      break
    end
    if h[3] > room and not (idle and #claimed == 0) then break end
    redis.call('XREADGROUP', 'GROUP', GROUP, ctx.consumer, 'COUNT', 1, 'STREAMS', keys[best], '>')
    cursors[best].pos = cursors[best].pos + 1
    local job = take(ctx, keys[best], h[1], h[2], true)
    if job then
      room = room - h[3]
      table.insert(claimed, job)
    end
    idle = idle and #claimed == 0
  end
  apply_moves(ctx)
  return claimed
end

-- reclaim: KEYS units, queue...; ARGV as claim's first eight, then min_idle_ms, max_count
local function reclaim(keys, args)
  local ctx = context(args)
  ctx.units_key = keys[1]
  local min_idle, max_count = args[9], tonumber(args[10])
  local claimed = {}
  for i = 2, #keys do
    if #claimed >= max_count then break end
    if redis.call('EXISTS', keys[i]) == 1 then
      local res = redis.call('XAUTOCLAIM', keys[i], GROUP, ctx.consumer, min_idle, '0-0',
        'COUNT', max_count - #claimed)
      for _, entry in ipairs(res[2]) do
        local id, f = entry[1], entry[2]
        local job_id = nil
        for j = 1, #f, 2 do if f[j] == 'job' then job_id = f[j + 1] end end
        local job = job_id and take(ctx, keys[i], id, job_id, false)
        if job then
          table.insert(claimed, job)
        elseif not job_id then
          ack(keys[i], id)
        end
      end
    end
  end
  return claimed
end

-- renew: KEYS queue per job; ARGV consumer, job_t, then entry ids, then job ids
-- Returns {lost job ids, cancelled job ids}.
local function renew(keys, args)
  local consumer, job_t, n = args[1], args[2], #keys
  local lost, cancelled = {}, {}
  for i = 1, n do
    local entry_id, job_id = args[2 + i], args[2 + n + i]
    local p = redis.call('XPENDING', keys[i], GROUP, entry_id, entry_id, 1)
    if #p == 0 or p[1][2] ~= consumer then
      table.insert(lost, job_id)
    else
      redis.call('XCLAIM', keys[i], GROUP, consumer, 0, entry_id, 'JUSTID')
      if redis.call('HGET', string.format(job_t, job_id), 'cancel') == '1' then
        table.insert(cancelled, job_id)
      end
    end
  end
  return {lost, cancelled}
end

-- emit: KEYS job, ev; ARGV consumer, job_id, channel, kind, data, ...
-- Returns 0 if this worker no longer owns the job, 2 if cancel was asked, else 1.
local function emit(keys, args)
  local owner = redis.call('HMGET', keys[1], 'worker', 'status', 'cancel')
  if owner[1] ~= args[1] or owner[2] ~= 'running' then return 0 end
  for i = 4, #args, 2 do event(keys[2], args[i], args[i + 1]) end
  notify(args[3], args[2])
  if owner[3] == '1' then return 2 end
  return 1
end

-- complete: KEYS job, ev, queue, units, output shares
-- ARGV consumer, entry_id, job_id, status, now, ttl, channel, tenant, share, alpha,
--      nfields, field, value, ..., then kind, data pairs for final events.
-- A non-empty share (completion tokens / max_tokens) moves the tenant's moving average.
-- Returns 1 on success, 0 if already finished (no-op), -1 if another worker owns it.
local function complete(keys, args)
  local job, ev, queue, units_key, shares = keys[1], keys[2], keys[3], keys[4], keys[5]
  local consumer, entry_id, job_id, status = args[1], args[2], args[3], args[4]
  local current = redis.call('HMGET', job, 'status', 'worker', 'estimated_units')
  if not current[1] or TERMINAL[current[1]] then
    ack(queue, entry_id)
    return 0
  end
  if current[2] ~= consumer then return -1 end
  local nfields = tonumber(args[11])
  local fields = {unpack(args, 12, 11 + nfields * 2)}
  local events = {unpack(args, 12 + nfields * 2)}
  finish(job, ev, queue, units_key, entry_id, tonumber(current[3] or '0'), status, args[5],
    tonumber(args[6]), fields, events, args[7], job_id)
  if args[9] ~= '' then
    local share, alpha = tonumber(args[9]), tonumber(args[10])
    local old = tonumber(redis.call('HGET', shares, args[8]))
    if old then share = old + alpha * (share - old) end
    redis.call('HSET', shares, args[8], tostring(share))
  end
  return 1
end

-- release: give a running job back to its queue under a new entry.
-- KEYS job, ev, queue, units, wake; ARGV consumer, entry_id, job_id, reason, graceful, channel
local function release(keys, args)
  local job, ev, queue, units_key, wake = keys[1], keys[2], keys[3], keys[4], keys[5]
  local current = redis.call('HMGET', job, 'status', 'worker', 'estimated_units', 'job_class', 'band')
  if current[1] ~= 'running' or current[2] ~= args[1] then return 0 end
  local units = tonumber(current[3])
  local qfield = current[4] .. ':' .. current[5]
  ack(queue, args[2])
  local entry_id = redis.call('XADD', queue, '*', 'job', args[3], 'units', current[3])
  redis.call('HSET', job, 'status', 'queued', 'worker', '', 'entry', entry_id)
  if args[5] == '1' then redis.call('HINCRBY', job, 'attempts', -1) end
  redis.call('HINCRBYFLOAT', units_key, 'inflight', -units)
  redis.call('HINCRBYFLOAT', units_key, 'queued', units)
  redis.call('HINCRBYFLOAT', units_key, 'u:' .. qfield, units)
  redis.call('HINCRBY', units_key, 'n:' .. qfield, 1)
  redis.call('RPUSH', wake, '1')
  event(ev, 'status', status_event('queued', '"reason":' .. cjson.encode(args[4])))
  notify(args[6], args[3])
  return 1
end

-- cancel: KEYS job, ev, queue, units; ARGV job_id, now, ttl, events channel, cancel channel
-- Returns the status after the call: cancelled, cancelling, or the terminal status.
local function cancel(keys, args)
  local job, ev, queue, units_key = keys[1], keys[2], keys[3], keys[4]
  local cur = redis.call('HMGET', job, 'status', 'entry', 'estimated_units', 'job_class', 'band')
  local status = cur[1]
  if not status then return false end
  if status == 'queued' then
    local units = tonumber(cur[3])
    local qfield = cur[4] .. ':' .. cur[5]
    redis.call('XDEL', queue, cur[2])
    redis.call('HINCRBYFLOAT', units_key, 'queued', -units)
    redis.call('HINCRBYFLOAT', units_key, 'u:' .. qfield, -units)
    redis.call('HINCRBY', units_key, 'n:' .. qfield, -1)
    redis.call('HINCRBY', units_key, 'cancelled', 1)
    redis.call('HSET', job, 'status', 'cancelled', 'finished_at', args[2],
      'error', 'cancelled before it ran')
    event(ev, 'status', status_event('cancelled'))
    redis.call('EXPIRE', job, tonumber(args[3]))
    redis.call('EXPIRE', ev, tonumber(args[3]))
    notify(args[4], args[1])
    return 'cancelled'
  end
  if status == 'running' then
    redis.call('HSET', job, 'cancel', '1')
    redis.call('PUBLISH', args[5], args[1])
    return 'cancelling'
  end
  return status
end

redis.register_function('iq_enqueue', enqueue)
redis.register_function('iq_claim', claim)
redis.register_function('iq_reclaim', reclaim)
redis.register_function('iq_renew', renew)
redis.register_function('iq_emit', emit)
redis.register_function('iq_complete', complete)
redis.register_function('iq_release', release)
redis.register_function('iq_cancel', cancel)
