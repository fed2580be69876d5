package api

import "strings"

// EnrollTokenEnv is the environment variable traceless-agent reads its
// one-use enrollment token from (like every setting, TRACELESS_AGENT_ and
// the flag's name). The environment of a process is readable only by its
// user and root; its command line is readable by every user of the node.
const EnrollTokenEnv = "TRACELESS_AGENT_ENROLL_TOKEN"

// Where an enrolled agent keeps its credential (node credential and
// WireGuard private key), for EnrollCommand.
const (
	// AgentCredentialFile is the agent's default, in the directory that
	// the systemd unit's StateDirectory=traceless-agent creates: it
	// survives reboots, so the node comes back by itself.
	AgentCredentialFile = "/var/lib/traceless-agent/credential.json"
	// AgentTmpfsCredentialFile is on the tmpfs /run: the credential never
	// reaches a disk, and so does not outlive a reboot either.
	AgentTmpfsCredentialFile = "/run/traceless-agent/credential.json"
	// AgentTmpfsConsequence is what choosing AgentTmpfsCredentialFile
	// costs, in words to show next to it.
	AgentTmpfsConsequence = "after a reboot the node needs a new enrollment token"
)

// EndpointPlaceholder stands in EnrollCommand's result for the endpoint
// when none is known: the operator replaces it with the node's public
// HOST:PORT.
const EndpointPlaceholder = "<HOST:PORT>"

// EnrollCommand returns the shell command that enrolls a new node into the
// control plane at serverURL with the one-use token and starts
// traceless-agent, for the CLI and the dashboard to show. The token goes in
// the environment (EnrollTokenEnv), never on the command line. endpoint is
// the HOST:PORT devices dial (EndpointPlaceholder when empty);
// credentialFile is where the agent keeps its credential
// (AgentCredentialFile when empty, or AgentTmpfsCredentialFile). Every value
// is quoted for a POSIX shell when it needs to be.
func EnrollCommand(serverURL, token, endpoint, credentialFile string) string {
	ep := EndpointPlaceholder
	if endpoint != "" {
		ep = shellQuote(endpoint)
	}
	if credentialFile == "" {
		credentialFile = AgentCredentialFile
	}
	return strings.Join([]string{
		EnrollTokenEnv + "=" + shellQuote(token),
		"traceless-agent",
		"--server", shellQuote(serverURL),
		"--endpoint", ep,
		"--credential-file", shellQuote(credentialFile),
	}, " ")
}

// shellSafe are the bytes a POSIX shell word may hold unquoted.
const shellSafe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@%+=,"

// shellQuote returns s as one POSIX shell word: unchanged when it holds
// only safe bytes, else in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, shellSafe) == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
