/** The session-end webhook: signed `session.ended` deliveries, retried in the background, bounded. */
export * from './webhook-signature';
export * from './session-ended-event';
export * from './webhook-sender';
