package controlplane

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.yaml.in/yaml/v3"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// PolicyVersion is one version of the privacy policy owners accept.
type PolicyVersion struct {
	Version     string    `yaml:"version"`
	EffectiveAt time.Time `yaml:"effective_at"`
	Text        string    `yaml:"text"`
}

//go:embed policy_default.md
var defaultPolicyText string

// DefaultPolicies is the built-in policy used when none is configured.
var DefaultPolicies = []PolicyVersion{{Version: "1", EffectiveAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Text: defaultPolicyText}}

// LoadPolicies reads a YAML list of policy versions:
//
//   - version: "2026-12"
//     effective_at: 2026-12-22T00:00:00Z
//     text: |
//     # Privacy policy …
func LoadPolicies(r io.Reader) ([]PolicyVersion, error) {
	var vs []PolicyVersion
	dec := yaml.NewDecoder(io.LimitReader(r, 1<<20))
	dec.KnownFields(true)
	if err := dec.Decode(&vs); err != nil {
		return nil, fmt.Errorf("policy file: %w", err)
	}
	return vs, validatePolicies(vs)
}

func validatePolicies(vs []PolicyVersion) error {
	if len(vs) == 0 {
		return errors.New("policy file: no versions")
	}
	seen := map[string]bool{}
	for i, v := range vs {
		switch {
		case v.Version == "" || len(v.Version) > 32 || strings.TrimSpace(v.Version) != v.Version:
			return fmt.Errorf("policy file: version %d: version must be 1-32 characters", i+1)
		case seen[v.Version]:
			return fmt.Errorf("policy file: version %q appears twice", v.Version)
		case v.EffectiveAt.IsZero():
			return fmt.Errorf("policy file: version %q: effective_at is required", v.Version)
		case strings.TrimSpace(v.Text) == "":
			return fmt.Errorf("policy file: version %q: text is empty", v.Version)
		}
		seen[v.Version] = true
	}
	return nil
}

// policyState returns the version in effect at now and the next version
// when it is already announced (within the notice period before it takes
// effect).
func (s *Server) policyState(now time.Time) (current PolicyVersion, upcoming *PolicyVersion) {
	vs := append([]PolicyVersion(nil), s.opts.Policies...)
	sort.Slice(vs, func(i, j int) bool { return vs[i].EffectiveAt.Before(vs[j].EffectiveAt) })
	current = vs[0]
	for i, v := range vs {
		if !v.EffectiveAt.After(now) {
			current = v
			continue
		}
		if now.After(v.EffectiveAt.Add(-s.opts.PolicyNotice)) || now.Equal(v.EffectiveAt.Add(-s.opts.PolicyNotice)) {
			upcoming = &vs[i]
		}
		break
	}
	return current, upcoming
}

func (s *Server) policyView(v PolicyVersion) api.Policy {
	return api.Policy{Version: v.Version, EffectiveAt: v.EffectiveAt.UTC(), AnnouncedAt: v.EffectiveAt.Add(-s.opts.PolicyNotice).UTC(), Text: v.Text}
}

func (s *Server) handlePolicy(c echo.Context) error {
	cur, up := s.policyState(s.now())
	out := api.PolicyStatus{Current: s.policyView(cur)}
	if up != nil {
		v := s.policyView(*up)
		out.Upcoming = &v
	}
	return c.JSON(http.StatusOK, out)
}

// handleAcceptPolicy records that the owner accepted the current or the
// announced upcoming version.
func (s *Server) handleAcceptPolicy(c echo.Context) error {
	var in api.PolicyAccept
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	cur, up := s.policyState(s.now())
	if in.Version != cur.Version && (up == nil || in.Version != up.Version) {
		return badRequest("version", "is neither the current nor the announced policy version")
	}
	o := currentOwner(c)
	if err := s.store.SetAcceptedPolicy(c.Request().Context(), o.ID, in.Version); err != nil {
		return err
	}
	o.AcceptedPolicyVersion = in.Version
	v, err := s.ownerView(c.Request().Context(), o)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}
