package controlplane

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// policyBody is the privacy policy page: the version in effect, the next
// one once announced, and what the owner accepted.
type policyBody struct {
	Current  api.Policy
	Upcoming *api.Policy
	Accepted string
}

// policyNotice is the layout's reminder to review the privacy policy.
type policyNotice struct {
	// Version is the version to review; Announced says it is an upcoming
	// version, not yet in effect (EffectiveAt then says when it will be).
	Version     string
	Announced   bool
	EffectiveAt string
}

// policyNoticeFor reports what an owner still has to review, or nil. The
// policy is the owners' (what is stored about them, their apps and their
// users): an operator is asked to accept it only once they own apps.
func (s *Server) policyNoticeFor(ctx context.Context, o store.Owner) *policyNotice {
	if o.Role == store.RoleAdmin {
		apps, err := s.store.ListApps(ctx, o.ID)
		if err == nil && len(apps) == 0 {
			return nil
		}
	}
	cur, up := s.policyState(s.now())
	switch {
	case o.AcceptedPolicyVersion != cur.Version && (up == nil || o.AcceptedPolicyVersion != up.Version):
		return &policyNotice{Version: cur.Version}
	case up != nil && o.AcceptedPolicyVersion != up.Version:
		return &policyNotice{Version: up.Version, Announced: true, EffectiveAt: up.EffectiveAt.UTC().Format("2 January 2006")}
	}
	return nil
}

func (d *dashboard) handlePolicyPage(c echo.Context) error {
	cur, up := d.s.policyState(d.s.now())
	b := policyBody{Current: d.s.policyView(cur), Accepted: currentOwner(c).AcceptedPolicyVersion}
	if up != nil {
		v := d.s.policyView(*up)
		b.Upcoming = &v
	}
	p := d.newPage(c, "Privacy policy", "policy")
	p.Body = b
	return d.render(c, http.StatusOK, "policy.html", p)
}

// handleAcceptPolicy records that the owner accepted the current or the
// announced version.
func (d *dashboard) handleAcceptPolicy(c echo.Context) error {
	version := formValue(c, "version")
	cur, up := d.s.policyState(d.s.now())
	if version != cur.Version && (up == nil || version != up.Version) {
		return badRequest("version", "This is neither the current nor the announced version of the policy; reload the page.")
	}
	if err := d.s.store.SetAcceptedPolicy(c.Request().Context(), currentOwner(c).ID, version); err != nil {
		return err
	}
	return redirect(c, "/policy?done=policy-accepted")
}
