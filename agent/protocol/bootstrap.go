package protocol

// BootstrapKeyHeader carries, in POST /agent/bootstrap, the exchange key: 32 random bytes,
// base64url without padding, that the agent draws and keeps on its disk before its first
// attempt. The server keeps its SHA-256 with the used bootstrap token; a retry with the
// same token and key shortly after, while the credential minted first was never used,
// gets a new credential (the first is revoked): an answer the network lost is not the end
// of the agent (docs/agents.md, "Bootstrap tokens").
const BootstrapKeyHeader = "Stagely-Exchange-Key"

// BootstrapKeyLen is the length of an exchange key as sent: 32 bytes in base64url.
const BootstrapKeyLen = 43
