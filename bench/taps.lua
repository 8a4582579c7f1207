-- wrk script of bench/taps.py: one mode per run, chosen by the arguments after `--`.
--
--   wrk ... -s bench/taps.lua URL -- healthz
--   wrk ... -s bench/taps.lua URL -- taps TOKENS_FILE READERS_FILE SEED
--
-- `taps` spreads the requests over the tracked links in TOKENS_FILE (one token a line) and
-- over the readers in READERS_FILE (one reader id a line): three taps in four come back
-- with a reader's cookie, the fourth is a new reader the gateway gives a cookie to.
-- At the end one line of JSON goes to stdout: requests, seconds, errors, latencies in ms.

local mode, tokens, readers = "healthz", {}, {}

local function lines(path)
  local found = {}
  for line in io.lines(path) do
    if line ~= "" then found[#found + 1] = line end
  end
  if #found == 0 then error("no lines in " .. path) end
  return found
end

function init(args)
  mode = args[1] or "healthz"
  if mode == "taps" then
    tokens, readers = lines(args[2]), lines(args[3])
    math.randomseed(tonumber(args[4]) or 1)
  elseif mode ~= "healthz" then
    error("unknown mode " .. mode)
  end
end

function request()
  if mode == "healthz" then
    return wrk.format("GET", "/healthz")
  end
  local headers = {}
  if math.random(4) > 1 then
    headers["Cookie"] = "allim_reader=" .. readers[math.random(#readers)]
  end
  return wrk.format("GET", "/r/" .. tokens[math.random(#tokens)], headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.6f, "errors": {"connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d}, "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
