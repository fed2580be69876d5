package packaging

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// dockerStage is one FROM … AS name stage of the Dockerfile, with its
// instructions joined across line continuations.
type dockerStage struct {
	from, name string
	lines      []string
}

// parseDockerfile returns the ARG defaults before the first FROM and the
// stages.
func parseDockerfile(t *testing.T, path string) (map[string]string, []dockerStage) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	args := map[string]string{}
	var stages []dockerStage
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		word, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(word) {
		case "FROM":
			f := strings.Fields(rest)
			st := dockerStage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			return
		case "ARG":
			if len(stages) == 0 {
				k, v, _ := strings.Cut(rest, "=")
				args[k] = v
			}
		}
		if len(stages) > 0 {
			stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
		}
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return args, stages
}

// labels returns the LABEL key/value pairs of a stage.
func (s dockerStage) labels() map[string]string {
	out := map[string]string{}
	re := regexp.MustCompile(`([a-z0-9.\-]+)="([^"]*)"`)
	for _, l := range s.lines {
		if strings.HasPrefix(l, "LABEL ") {
			for _, m := range re.FindAllStringSubmatch(l, -1) {
				out[m[1]] = m[2]
			}
		}
	}
	return out
}

func (s dockerStage) instr(word string) []string {
	var out []string
	for _, l := range s.lines {
		if strings.HasPrefix(l, word+" ") {
			out = append(out, strings.TrimPrefix(l, word+" "))
		}
	}
	return out
}

// TestDockerfile checks the images without building them (Docker is not
// needed): both run from a distroless base pinned by digest, carry the OCI
// labels, the server image (the default target) holds the server alone
// and runs unprivileged, the agent image holds the agent alone and says
// what it needs; the load driver and the CLI are in neither.
func TestDockerfile(t *testing.T) {
	args, stages := parseDockerfile(t, filepath.Join("..", "Dockerfile"))
	base := args["BASE"]
	m := regexp.MustCompile(`^(\S+):\S+@(sha256:[0-9a-f]{64})$`).FindStringSubmatch(base)
	if m == nil {
		t.Fatalf("ARG BASE=%q: want image:tag@sha256:<64 hex digits>", base)
	}
	digest := m[2]
	byName := map[string]dockerStage{}
	for _, s := range stages {
		byName[s.name] = s
	}
	if n := len(stages); n == 0 || stages[n-1].name != "server" {
		t.Fatalf("the last stage (the default target) must be the server; stages: %v", stages)
	}
	build := byName["build"]
	for _, l := range build.lines {
		if strings.Contains(l, "traceless-bench") || strings.Contains(l, "cmd/*/") {
			t.Errorf("the build stage builds more than the server and the agent: %s", l)
		}
	}
	for _, tc := range []struct {
		stage, binary, user string
		describe            []string
	}{
		{"server", "traceless-server", "10001:10001", nil},
		{"agent", "traceless-agent", "0:0", []string{"NET_ADMIN", "/dev/net/tun"}},
	} {
		s, ok := byName[tc.stage]
		if !ok {
			t.Errorf("no %s stage", tc.stage)
			continue
		}
		if s.from != "${BASE}" {
			t.Errorf("%s stage is FROM %s, want ${BASE} (the pinned base)", tc.stage, s.from)
		}
		l := s.labels()
		for _, k := range []string{"title", "description", "source", "version", "revision", "base.name", "base.digest"} {
			if l["org.opencontainers.image."+k] == "" && k != "revision" {
				t.Errorf("%s image: no org.opencontainers.image.%s label", tc.stage, k)
			}
			if _, ok := l["org.opencontainers.image."+k]; !ok {
				t.Errorf("%s image: no org.opencontainers.image.%s label", tc.stage, k)
			}
		}
		if l["org.opencontainers.image.title"] != tc.binary {
			t.Errorf("%s image title %q, want %q", tc.stage, l["org.opencontainers.image.title"], tc.binary)
		}
		if l["org.opencontainers.image.base.digest"] != digest || l["org.opencontainers.image.base.name"] != m[1]+":nonroot" {
			t.Errorf("%s image base labels %q %q, want %s:nonroot and %s", tc.stage, l["org.opencontainers.image.base.name"], l["org.opencontainers.image.base.digest"], m[1], digest)
		}
		for _, word := range tc.describe {
			if !strings.Contains(l["org.opencontainers.image.description"], word) {
				t.Errorf("%s image description does not say it needs %s", tc.stage, word)
			}
		}
		var copied []string
		for _, c := range s.instr("COPY") {
			f := strings.Fields(c)
			for _, src := range f[:len(f)-1] {
				if !strings.HasPrefix(src, "--") {
					copied = append(copied, src)
				}
			}
		}
		want := []string{"/out/" + tc.binary}
		if tc.stage == "server" {
			want = append(want, "/out/data")
		}
		if !slices.Equal(copied, want) {
			t.Errorf("%s image copies %v, want %v", tc.stage, copied, want)
		}
		if u := s.instr("USER"); len(u) != 1 || u[0] != tc.user {
			t.Errorf("%s image USER %v, want %s", tc.stage, u, tc.user)
		}
		if e := s.instr("ENTRYPOINT"); len(e) != 1 || e[0] != `["/usr/bin/`+tc.binary+`"]` {
			t.Errorf("%s image ENTRYPOINT %v", tc.stage, e)
		}
	}
}

// TestComposeAgent checks the node's compose example: the agent image,
// the host's network, NET_ADMIN and no other capability, /dev/net/tun,
// no new privileges, a read-only root and the credential in a volume.
func TestComposeAgent(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "configs", "docker-compose.agent.example.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Build struct {
				Dockerfile, Target string
			}
			NetworkMode string   `yaml:"network_mode"`
			CapDrop     []string `yaml:"cap_drop"`
			CapAdd      []string `yaml:"cap_add"`
			Devices     []string
			SecurityOpt []string `yaml:"security_opt"`
			ReadOnly    bool     `yaml:"read_only"`
			Volumes     []string
			Environment map[string]string
			Privileged  bool
		}
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	a, ok := c.Services["traceless-agent"]
	if !ok {
		t.Fatal("no traceless-agent service")
	}
	if a.Build.Target != "agent" || a.Build.Dockerfile != "Dockerfile" {
		t.Errorf("build %+v, want the agent target of the Dockerfile", a.Build)
	}
	if a.NetworkMode != "host" {
		t.Errorf("network_mode %q, want host", a.NetworkMode)
	}
	if !slices.Equal(a.CapDrop, []string{"ALL"}) || !slices.Equal(a.CapAdd, []string{"NET_ADMIN"}) || a.Privileged {
		t.Errorf("capabilities: drop %v, add %v, privileged %v; want ALL dropped and NET_ADMIN alone", a.CapDrop, a.CapAdd, a.Privileged)
	}
	if !slices.Contains(a.Devices, "/dev/net/tun:/dev/net/tun") {
		t.Errorf("devices %v lack /dev/net/tun", a.Devices)
	}
	if !slices.Contains(a.SecurityOpt, "no-new-privileges:true") || !a.ReadOnly {
		t.Errorf("security_opt %v, read_only %v", a.SecurityOpt, a.ReadOnly)
	}
	if !slices.Contains(a.Volumes, "traceless-agent:/var/lib/traceless-agent") {
		t.Errorf("volumes %v: the credential directory is not a volume", a.Volumes)
	}
	if a.Environment["TRACELESS_AGENT_SERVER"] == "" {
		t.Error("no TRACELESS_AGENT_SERVER in the example")
	}
}
