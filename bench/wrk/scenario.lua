-- One wrk script for every scenario: SCENARIO picks the requests, BENCH_DATA lists
-- "token todo_id email" per line (seeded by bench/run.py), BENCH_DELETE lists todos that
-- may each be deleted once. done() prints one JSON line for bench/run.py to read.
local scenario = os.getenv("SCENARIO")
local password = os.getenv("BENCH_PASSWORD")
local deep_path = os.getenv("BENCH_PATH")
local entries, deletable = {}, {}
local thread_id, thread_count = 0, 1

local threads = {}
function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

local function load(path, keep)
  local list, n = {}, 0
  if not path then return list end
  for line in io.lines(path) do
    if keep(n) then
      local token, todo, email = line:match("(%S+) (%S+) (%S+)")
      table.insert(list, {token = token, todo = todo, email = email})
    end
    n = n + 1
  end
  return list
end

function init(args)
  thread_id = tonumber(wrk.thread:get("thread_id")) or 0
  thread_count = tonumber(os.getenv("WRK_THREADS")) or 1
  math.randomseed(os.time() * 1000 + thread_id)
  entries = load(os.getenv("BENCH_DATA"), function(n) return true end)
  -- Each thread deletes its own share, so no todo is deleted twice.
  deletable = load(os.getenv("BENCH_DELETE"), function(n) return n % thread_count == thread_id end)
end

local function auth(entry)
  return {["Authorization"] = "Bearer " .. entry.token, ["Content-Type"] = "application/json"}
end

local function get_todo(e) return wrk.format("GET", "/api/v1/todos/" .. e.todo, auth(e)) end
local function list_todos(e) return wrk.format("GET", "/api/v1/todos?limit=20", auth(e)) end
-- The list_*_10k scenarios' user (bench/lists_10k.py): about a third of their todos have the
-- label Work; about a third are subtasks, which top_level=true leaves out.
local function list_labelled(e)
  return wrk.format("GET", "/api/v1/todos?limit=20&label=work", auth(e))
end
local function list_top_level(e)
  return wrk.format("GET", "/api/v1/todos?limit=20&top_level=true", auth(e))
end
-- One parent's subtasks (e.todo is a parent with 8 of them), as a client opens a todo.
local function list_subtasks(e)
  return wrk.format("GET", "/api/v1/todos?limit=20&parent_id=" .. e.todo, auth(e))
end
-- A client's first sync: a feed page of 100 (each feed user has more than that).
local function changes(e) return wrk.format("GET", "/api/v1/changes?limit=100", auth(e)) end
local function create_todo(e)
  return wrk.format("POST", "/api/v1/todos", auth(e), '{"title":"bench todo","priority":"high"}')
end
-- Every update changes the row: a title no request has sent before (this thread's id and
-- count), so none takes the no-write path of a PATCH that changes nothing. update_noop sends
-- completed=false, which the seeded todos are and no scenario changes: each of its PATCHes
-- is that no-write path, measured apart.
local updates = 0
local function update_todo(e)
  updates = updates + 1
  local title = string.format("updated %d-%d", thread_id, updates)
  return wrk.format("PATCH", "/api/v1/todos/" .. e.todo, auth(e), '{"title":"' .. title .. '"}')
end
local function update_noop(e)
  return wrk.format("PATCH", "/api/v1/todos/" .. e.todo, auth(e), '{"completed":false}')
end
local function delete_todo(e)
  local victim = table.remove(deletable)
  if not victim then return get_todo(e) end
  return wrk.format("DELETE", "/api/v1/todos/" .. victim.todo, auth(victim))
end
local function login(e)
  local body = "username=" .. e.email .. "&password=" .. password
  return wrk.format("POST", "/api/v1/auth/token",
    {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end

function request()
  local e = entries[math.random(#entries)]
  if scenario == "health" then return wrk.format("GET", "/health")
  elseif scenario == "ceiling" then return wrk.format("GET", "/")
  -- changes_wait: the same reads, while bench/long_polls.py holds feed requests waiting.
  elseif scenario == "get_todo" or scenario == "changes_wait" then return get_todo(e)
  elseif scenario == "list_todos" or scenario == "list_plain_10k" then return list_todos(e)
  elseif scenario == "list_labelled_10k" then return list_labelled(e)
  elseif scenario == "list_parent_10k" then return list_subtasks(e)
  elseif scenario == "list_top_level_10k" then return list_top_level(e)
  elseif scenario == "changes" then return changes(e)
  elseif scenario == "create_todo" or scenario == "create_crowded" then return create_todo(e)
  elseif scenario == "update_todo" then return update_todo(e)
  elseif scenario == "update_noop" then return update_noop(e)
  elseif scenario == "login" then return login(e)
  elseif scenario == "page" then return wrk.format("GET", deep_path, auth(e))
  elseif scenario == "mixed" then
    -- 60% reads, 25% writes, 10% lists, 5% deletes, over many users.
    local r = math.random(100)
    if r <= 60 then return get_todo(e)
    elseif r <= 72 then return create_todo(e)
    elseif r <= 85 then return update_todo(e)
    elseif r <= 95 then return list_todos(e)
    else return delete_todo(e) end
  end
end

-- BENCH_STATUSES=1: count every response's status (wrk then hands each response to Lua,
-- which costs the client some CPU: bench/run.py asks for it where latency, not the client's
-- throughput, is the figure). Otherwise wrk's own count of statuses >= 400 stands.
statuses = {}  -- a global: done() reads each thread's with thread:get
if os.getenv("BENCH_STATUSES") == "1" then
  function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local counted = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      table.insert(counted, string.format('"%d": %d', status, n))
    end
  end
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), table.concat(counted, ", ")))
end
