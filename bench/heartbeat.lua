-- wrk script: each request is a heartbeat from the next kiosk in KEYS_FILE.
-- RATE (requests/s over all connections) paces the load with delay(); unset = saturate.
-- wrk has no open-loop pacing: see LATENCY_MS below, and read the rate it reports.
local keys, position, pause_ms = {}, 0, 0
-- BODY: the JSON body of every heartbeat (bench/common.py passes one with device vitals).
local body = os.getenv("BODY") or
  '{"app_version":"1.0.0","device_info":"Android/11 - Samsung Galaxy Tab A8"}'
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("KEYS_FILE")) do
    keys[#keys + 1] = line
  end
  local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
  -- START: how far each thread moved along the file in earlier runs, to carry on from there.
  position = (math.floor(id * #keys / nthreads) + tonumber(os.getenv("START") or "0")) % #keys
  local rate = tonumber(os.getenv("RATE") or "0")
  local connections = tonumber(os.getenv("CONNECTIONS") or "1")
  -- wrk waits delay() after each answer, so subtract the latency measured by a
  -- calibration run (LATENCY_MS) to keep the offered rate at RATE.
  local latency_ms = tonumber(os.getenv("LATENCY_MS") or "0")
  if rate > 0 then
    pause_ms = math.max(0, connections * 1000 / rate - latency_ms)
  end
end

function delay()
  return pause_ms
end

function request()
  position = position % #keys + 1
  return wrk.format("POST", "/kiosk/heartbeat", {
    ["X-Kiosk-API-Key"] = keys[position],
    ["Content-Type"] = "application/json",
  }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
