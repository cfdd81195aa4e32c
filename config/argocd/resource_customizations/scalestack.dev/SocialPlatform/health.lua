-- Argo CD health check for scalestack.dev/SocialPlatform.
-- Deleting -> Progressing; paused -> Suspended; status not yet for this generation -> Progressing;
-- Degraded=True or Stalled=True -> Degraded; Ready=True -> Healthy; anything else -> Progressing.
-- The operator stamps status.observedGeneration on every pass that acted on the spec, failed or
-- not, so a platform that cannot converge reads Degraded rather than Progressing forever.
local hs = {}

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "The platform is being torn down"
  return hs
end

if obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = "spec.paused is true: the operator changes nothing"
  return hs
end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (obj.status.observedGeneration == nil or obj.status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. tostring(generation)
  return hs
end

local ready = nil
local degraded = nil
local stalled = nil
for _, condition in ipairs(obj.status.conditions) do
  -- A condition computed for an older spec says nothing about this one.
  local current = generation == nil or condition.observedGeneration == nil or condition.observedGeneration >= generation
  if current and condition.type == "Ready" then
    ready = condition
  elseif current and condition.type == "Degraded" then
    degraded = condition
  elseif current and condition.type == "Stalled" then
    stalled = condition
  end
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message
  return hs
end

if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.message
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end

hs.status = "Progressing"
if ready ~= nil and ready.message ~= nil then
  hs.message = ready.message
else
  hs.message = "Waiting for the platform to become Ready"
end
return hs
