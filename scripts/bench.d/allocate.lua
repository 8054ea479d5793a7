-- POST /v1/allocations: one T4 replica, default placement, a long lease.
-- BENCH_TYPES is a comma-separated list of instance types; each request takes the next one,
-- so 10 types spread the grants over 10 pools and one type makes one pool hot.
dofile(os.getenv("BENCH_LUA_DIR") .. "/wrk-report.lua")

local types = {}
for t in string.gmatch(os.getenv("BENCH_TYPES"), "[^,]+") do
    table.insert(types, t)
end
local token = os.getenv("BENCH_TOKEN")
local counter = 0

local base_init = init
function init(args)
    base_init(args)
    counter = math.random(0, #types - 1)
end

function request()
    counter = counter + 1
    local body = string.format(
        '{"computeClass":"gpu","gpuSeries":["T4"],"gpuCount":1,"cpu":4,"memoryGiB":15,"replicas":1,' ..
        '"instanceType":"%s","leaseSeconds":86400,"labels":{"app":"bench"}}',
        types[(counter % #types) + 1])
    return wrk.format("POST", "/v1/allocations",
        {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
