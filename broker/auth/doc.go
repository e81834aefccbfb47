// Package auth holds the broker's authentication and authorization
// providers: password files of Argon2id hashes, SASL PLAIN over MQTT 5
// enhanced authentication, client certificates, SCRAM-SHA-256, JWT and
// federated JWT (JWKS), access control lists, a failed-authentication rate
// limiter, and the combinators that chain them.
//
// # Layout
//
// This package imports package broker and implements its seams
// (broker.Authenticator, broker.Authorizer, broker.AuthRequest,
// broker.AuthResult, broker.ClientInfo); package broker never imports it,
// and the program (cmd/mqtt5) wires the two together through broker.Config.
// This departs from the rule that broker subpackages do not import broker:
// the seam types are the broker's, and mirroring them here would duplicate
// every field of the request, result and client description and require a
// conversion on every authentication and every authorization check.
//
// # Authentication
//
// Each provider implements broker.Authenticator and can be used on its own:
//
//   - PasswordFile checks the CONNECT user name and password (MQTT 5.0 and
//     3.1.1) against a file of "user:$argon2id$..." lines (PHC string
//     format). Argon2 computations run under a semaphore (default
//     runtime.NumCPU()), and unknown users are checked against a dummy hash
//     so that they cost the same as known ones.
//   - Plain implements the SASL PLAIN mechanism (RFC 4616) as the MQTT 5
//     Authentication Method "PLAIN", checked against a PasswordVerifier
//     such as PasswordFile.
//   - CertAuth takes the identity from the verified TLS client certificate:
//     its Common Name, a Subject Alternative Name, or its SHA-256
//     fingerprint mapped to a user name by a file.
//
// Chain combines providers: each one states, through Provider.Handles,
// whether a request is its own (by Authentication Method, or by the absence
// of one), and the first that handles a request decides. A multi-step
// exchange stays with the provider that started it. RateLimit wraps any
// authenticator and locks out addresses and user names after repeated
// failures, with Banned (0x8A; 3.1.1 return code 5).
//
// Reason codes: wrong or missing credentials give Bad User Name or Password
// (0x86; 3.1.1 return code 4); a client without credentials where some are
// required gets Not Authorized (0x87; return code 5); an Authentication
// Method that no provider handles gets Bad Authentication Method (0x8C).
//
// # SCRAM-SHA-256 and JWT
//
// SCRAM implements SCRAM-SHA-256 (RFC 5802, RFC 7677) as the MQTT 5
// Authentication Method "SCRAM-SHA-256" against a file of
// username:salt:iterations:stored_key:server_key lines (managed with
// "mqtt5 scram"). Unknown user names get a salt derived from a secret and
// fail only at the final step, exactly like a wrong password. Exchanges are
// bounded in number (Server Busy beyond the limit) and in time.
//
// JWT verifies JSON Web Tokens (HS256, RS256, ES256, EdDSA) sent under the
// Authentication Method "JWT" or as the CONNECT password (3.1.1 too). The
// key is chosen by kid and verifies only with its own algorithm, and role
// claims become the "roles" attribute. FederatedJWT trusts several
// identity providers: the token's iss picks the issuer, and only that
// issuer's keys verify it. Those keys come from its JWKS over HTTPS,
// refreshed in the background, refetched for an unknown kid at a bounded
// rate, behind a circuit breaker, with static fallback keys. User names
// are namespaced "alias:sub", and roles come from claims, from
// claim-binding rules, or from nowhere (the ACL decides). A refused token
// gets Not Authorized under the JWT method and Bad User Name or Password
// as a password.
//
// # Authorization
//
// ACL implements broker.Authorizer from a rules file (user and role rules,
// role assignments, %u and %c substitution, deny wins, default deny) and
// also answers CanReceive for delivery checks. SUBSCRIBE is checked by
// filter subsumption: a rule on "sensors/+" does not allow a subscription
// to "sensors/#". AuthorizeAll and AuthorizeAny combine authorizers;
// using one authorizer alone is the primary-only combination.
//
// # Reloading
//
// File-backed providers load their file when created and expose Reload,
// which swaps the new content in atomically: authentications and checks in
// progress finish with the content they started with, and a file that
// fails to parse leaves the current content in place. WatchFiles (and the
// providers' Watch methods) reload on file changes, debounced.
package auth
