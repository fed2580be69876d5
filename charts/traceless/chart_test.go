// Package chart tests the Helm chart of the control plane with the pinned
// helm (tools/helmbin, built by .ci/run; TRACELESS_HELM names it): helm
// lint, and the manifests helm template renders.
package chart

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// helm returns the pinned helm binary: TRACELESS_HELM, which .ci/run sets
// after building tools/helmbin. Without it the tests skip, or fail under
// CI=true.
func helm(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("TRACELESS_HELM")
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: TRACELESS_HELM is not set (.ci/run builds helm from tools/helmbin)")
		}
		t.Skip("TRACELESS_HELM is not set: build helm with (cd tools/helmbin && go build -o /tmp/ helm.sh/helm/v4/cmd/helm) and set TRACELESS_HELM=/tmp/helm")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("TRACELESS_HELM=%s: %v", bin, err)
	}
	return bin
}

// required are the values without which the chart refuses to render.
var required = []string{
	"database.url=postgres://traceless:pw@db.example.com:5432/traceless?sslmode=verify-full",
	"keys.sessionKey=c2Vzc2lvbi1rZXktb2YtdGhpcnR5LXR3by1ieXRlcyE=",
	"keys.secretKey=c2VjcmV0LWtleS1vZi10aGlydHktdHdvLWJ5dGVzISE=",
}

func helmRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helm(t), args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	if err != nil {
		return out.String(), errors.New(stderr.String() + err.Error())
	}
	return out.String(), nil
}

func setArgs(values ...string) []string {
	var out []string
	for _, v := range values {
		out = append(out, "--set", v)
	}
	return out
}

// TestHelmLint: helm lint --strict passes with the required values.
func TestHelmLint(t *testing.T) {
	out, err := helmRun(t, append([]string{"lint", "--strict", "."}, setArgs(required...)...)...)
	if err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	if !strings.Contains(out, "0 chart(s) failed") {
		t.Errorf("helm lint:\n%s", out)
	}
}

type manifest struct {
	Kind     string
	Metadata struct{ Name string }
	Spec     struct {
		Replicas *int
		Template struct {
			Spec podSpec
		}
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		}
		MinAvailable *int `yaml:"minAvailable"`
	}
	StringData map[string]string `yaml:"stringData"`
	raw        map[string]any
}

type podSpec struct {
	HostNetwork     bool  `yaml:"hostNetwork"`
	HostPID         bool  `yaml:"hostPID"`
	HostIPC         bool  `yaml:"hostIPC"`
	AutomountSAT    *bool `yaml:"automountServiceAccountToken"`
	SecurityContext struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    *int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []container
	Volumes    []struct {
		Name     string
		HostPath any `yaml:"hostPath"`
		Secret   *struct {
			SecretName  string `yaml:"secretName"`
			DefaultMode int    `yaml:"defaultMode"`
		}
		EmptyDir any `yaml:"emptyDir"`
	}
}

type probe struct {
	HTTPGet *struct {
		Path string
		Port any
	} `yaml:"httpGet"`
}

type container struct {
	Name            string
	Image           string
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		RunAsUser                *int  `yaml:"runAsUser"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Privileged               *bool
		Capabilities             struct{ Drop, Add []string }
	} `yaml:"securityContext"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Env            []struct {
		Name      string
		Value     string
		ValueFrom *struct {
			SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	VolumeMounts []struct {
		Name      string
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

// render runs helm template with values and parses every document.
func render(t *testing.T, values ...string) []manifest {
	t.Helper()
	out, err := helmRun(t, append([]string{"template", "tl", "."}, setArgs(values...)...)...)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	var docs []manifest
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var raw map[string]any
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, out)
		}
		if raw == nil {
			continue
		}
		b, _ := yaml.Marshal(raw)
		var m manifest
		if err := yaml.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m.raw = raw
		docs = append(docs, m)
	}
	return docs
}

func byKind(docs []manifest, kind string) []manifest {
	var out []manifest
	for _, d := range docs {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}

// hasKey reports whether key appears anywhere in v.
func hasKey(v any, key string) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if k == key || hasKey(x, key) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if hasKey(x, key) {
				return true
			}
		}
	}
	return false
}

// TestHelmTemplate checks what matters in the rendered manifests: several
// replicas, readiness on /readyz and liveness on /healthz, no hostPath nor
// host namespaces, non-root with a read-only root filesystem, no
// privilege escalation and no capability, the database URL and both keys
// from Secrets, the keys mounted read-only, and a PodDisruptionBudget.
func TestHelmTemplate(t *testing.T) {
	docs := render(t, required...)
	for _, d := range docs {
		if hasKey(d.raw, "hostPath") {
			t.Errorf("%s %s has a hostPath", d.Kind, d.Metadata.Name)
		}
	}
	deps := byKind(docs, "Deployment")
	if len(deps) != 1 {
		t.Fatalf("%d Deployments, want 1", len(deps))
	}
	dep := deps[0]
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3 by default", dep.Spec.Replicas)
	}
	pod := dep.Spec.Template.Spec
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("the pod shares a host namespace")
	}
	if pod.AutomountSAT == nil || *pod.AutomountSAT {
		t.Error("the service account token is mounted; the server does not talk to the API server")
	}
	if sc := pod.SecurityContext; sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and a non-zero runAsUser", sc)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || (sc.RunAsUser != nil && *sc.RunAsUser == 0) {
		t.Error("the container may run as root")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("the root filesystem is writable")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || (sc.Privileged != nil && *sc.Privileged) {
		t.Error("privilege escalation is allowed or the container is privileged")
	}
	if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("capabilities drop %v add %v; want ALL dropped and none added", sc.Capabilities.Drop, sc.Capabilities.Add)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v, want GET /readyz", p)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v, want GET /healthz", p)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "secret:" + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		default:
			env[e.Name] = e.Value
		}
	}
	if env["TRACELESS_DB"] != "secret:tl-traceless-database/url" {
		t.Errorf("TRACELESS_DB = %q, want it from the database Secret", env["TRACELESS_DB"])
	}
	if env["TRACELESS_SESSION_KEY_FILE"] != "/etc/traceless/keys/session.key" || env["TRACELESS_SECRET_KEY_FILE"] != "/etc/traceless/keys/secret.key" {
		t.Errorf("key files %q %q", env["TRACELESS_SESSION_KEY_FILE"], env["TRACELESS_SECRET_KEY_FILE"])
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/etc/traceless/keys" {
			mounted = m.ReadOnly && m.Name == "keys"
		}
	}
	if !mounted {
		t.Errorf("the keys are not mounted read-only at /etc/traceless/keys: %+v", c.VolumeMounts)
	}
	for _, v := range pod.Volumes {
		if v.Name == "keys" && (v.Secret == nil || v.Secret.SecretName != "tl-traceless-keys" || v.Secret.DefaultMode&0o077 != 0) {
			t.Errorf("keys volume %+v: want Secret tl-traceless-keys, owner-only", v.Secret)
		}
	}
	secrets := map[string]manifest{}
	for _, s := range byKind(docs, "Secret") {
		secrets[s.Metadata.Name] = s
	}
	if k := secrets["tl-traceless-keys"].StringData; k["session.key"] == "" || k["secret.key"] == "" {
		t.Errorf("keys Secret %v: want session.key and secret.key", k)
	}
	if !strings.HasPrefix(secrets["tl-traceless-database"].StringData["url"], "postgres://") {
		t.Error("no database Secret with the URL")
	}
	if pdbs := byKind(docs, "PodDisruptionBudget"); len(pdbs) != 1 || pdbs[0].Spec.MinAvailable == nil || *pdbs[0].Spec.MinAvailable < 1 {
		t.Error("no PodDisruptionBudget keeping a replica")
	}
	if svcs := byKind(docs, "Service"); len(svcs) != 1 {
		t.Errorf("%d Services, want 1", len(svcs))
	}

	// Replicas follow the value; existing Secrets are used, not made.
	docs = render(t, "replicaCount=5", "database.existingSecret=pg", "database.existingSecretKey=dsn", "keys.existingSecret=tl-keys")
	if dep := byKind(docs, "Deployment")[0]; *dep.Spec.Replicas != 5 {
		t.Errorf("replicas %d, want 5", *dep.Spec.Replicas)
	}
	if s := byKind(docs, "Secret"); len(s) != 0 {
		t.Errorf("%d Secrets rendered with existing ones given", len(s))
	}
	out, _ := helmRun(t, "template", "tl", ".", "--set", "database.existingSecret=pg", "--set", "keys.existingSecret=tl-keys")
	if !strings.Contains(out, "secretName: tl-keys") || !strings.Contains(out, "name: pg") {
		t.Error("the existing Secrets are not the ones used")
	}
}

// TestHelmTemplateRefuses: without a PostgreSQL URL, with a SQLite one, or
// without the keys, the chart refuses to render and says why.
func TestHelmTemplateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		want   string
	}{
		{"no database", required[1:], "database.url or database.existingSecret is required"},
		{"sqlite", append([]string{"database.url=sqlite:///data/traceless.db"}, required[1:]...), "must be a postgres:// URL"},
		{"no session key", []string{required[0], required[2]}, "keys.sessionKey or keys.existingSecret is required"},
		{"no secret key", required[:2], "keys.secretKey or keys.existingSecret is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helmRun(t, append([]string{"template", "tl", "."}, setArgs(tc.values...)...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template: %v; want a refusal saying %q", err, tc.want)
			}
		})
	}
}
