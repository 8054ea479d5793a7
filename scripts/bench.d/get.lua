-- GET of the URL given to wrk, with the tenant's token when BENCH_TOKEN is set.
dofile(os.getenv("BENCH_LUA_DIR") .. "/wrk-report.lua")
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
end
