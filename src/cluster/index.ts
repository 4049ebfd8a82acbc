/** Several instances as one service (issue 15): Redis-backed registry, session records, limits, forwarding. */
export { ClusterNode, type ClusterSettings } from './cluster-node';
export { ClusterUnavailableError, PeerUnavailableError, isClusterUnavailable } from './cluster-errors';
export { ClusterGuard, isForwarded, forwardedBy, forwardedClientIp, type ClusterCallCheck } from './cluster-guard';
export { Forwarder, type ForwardRequest, type ForwardResult, type PeerDirectory } from './forwarder';
export { InstanceRegistry, type InstanceInfo, type DeadInstance } from './instance-registry';
export { RedisConnection, describeRedisUrl, type RedisState, type RedisReadiness } from './redis-connection';
export { RedisLimitStore, type SharedLimitStore, type SharedConsumeResult, type SharedWindowCount } from './redis-limit-store';
export {
  SessionRecordStore,
  type SessionRecord,
  type SessionRef,
  type Ownership,
  type SessionPatch,
  type CreateResult,
  type TakeOverResult,
} from './session-records';
export { defaultAdvertiseUrl, parseAdvertiseUrl } from './advertise-url';
