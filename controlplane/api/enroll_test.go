package api

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestEnrollCommand(t *testing.T) {
	for _, tt := range []struct {
		name                                    string
		server, token, endpoint, credentialFile string
		want                                    string
	}{
		{
			name:   "defaults",
			server: "https://vpn-admin.example.com", token: "tle_AbC-9_x",
			want: "TRACELESS_AGENT_ENROLL_TOKEN=tle_AbC-9_x traceless-agent --server https://vpn-admin.example.com" +
				" --endpoint <HOST:PORT> --credential-file /var/lib/traceless-agent/credential.json",
		},
		{
			name:   "endpoint and tmpfs",
			server: "http://127.0.0.1:8080", token: "tle_x", endpoint: "vpn-fra-1.example.com:51820",
			credentialFile: AgentTmpfsCredentialFile,
			want: "TRACELESS_AGENT_ENROLL_TOKEN=tle_x traceless-agent --server http://127.0.0.1:8080" +
				" --endpoint vpn-fra-1.example.com:51820 --credential-file /run/traceless-agent/credential.json",
		},
		{
			name:   "quoted",
			server: "https://example.com/a b", token: "it's", endpoint: "[2001:db8::1]:51820", credentialFile: "/srv/x y",
			want: `TRACELESS_AGENT_ENROLL_TOKEN='it'\''s' traceless-agent --server 'https://example.com/a b'` +
				` --endpoint '[2001:db8::1]:51820' --credential-file '/srv/x y'`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := EnrollCommand(tt.server, tt.token, tt.endpoint, tt.credentialFile)
			if got != tt.want {
				t.Fatalf("EnrollCommand:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestEnrollCommandShell runs the command in a POSIX shell, with a
// function standing in for traceless-agent, and checks what the agent
// would get: the token in its environment only, the rest as arguments.
func TestEnrollCommandShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no POSIX shell: %v", err)
		}
		t.Skip("no POSIX shell: ", err)
	}
	token := `tle_'$(touch x)"; *`
	server := "https://example.com/$HOME `id`"
	endpoint := "[2001:db8::1]:51820"
	cmd := EnrollCommand(server, token, endpoint, "/tmp/a b/credential.json")
	// Shells differ on '-' in function names: call it agent.
	call, found := strings.CutPrefix(cmd, EnrollTokenEnv+"="+shellQuote(token)+" traceless-agent ")
	if !found {
		t.Fatalf("command %s does not start with the token variable and traceless-agent", cmd)
	}
	script := `agent() { printf 'env=%s\n' "$` + EnrollTokenEnv + `"; for a in "$@"; do printf 'arg=%s\n' "$a"; done; }
` + EnrollTokenEnv + "=" + shellQuote(token) + " agent " + call + "\n"
	run := exec.Command(sh, "-c", script)
	run.Dir = t.TempDir()
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("sh: %v\n%s", err, out)
	}
	want := strings.Join([]string{
		"env=" + token,
		"arg=--server", "arg=" + server,
		"arg=--endpoint", "arg=" + endpoint,
		"arg=--credential-file", "arg=/tmp/a b/credential.json",
	}, "\n") + "\n"
	if string(out) != want {
		t.Fatalf("the shell ran %s\ngot:\n%s\nwant:\n%s", cmd, out, want)
	}
}
