/** Who made a request. Sessions are owned by `id`. */
export interface Principal {
  /** Stable owner id: `key:<name>` for API keys, `user:<userId>` for JWT users. */
  id: string;
  /** Shown to the client in `auth_success.user`. */
  userId: string | number;
  username: string;
  authMethod: 'api_key' | 'jwt';
  /** The API key's own daily token budget from the key file (0 = none), over the server's. */
  maxTokensPerDay?: number;
}

export type CredentialKind = 'api_key' | 'bearer';

export interface Credential {
  kind: CredentialKind;
  token: string;
}

/** The auth seam: turns a credential into a principal. */
export interface Authenticator {
  /** Resolves the principal, or null when the credential is not valid. Never throws for bad input. */
  authenticate(cred: Credential): Promise<Principal | null>;
}
