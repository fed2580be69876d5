package controlplane

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/billing"
	"github.com/traceless-vpn/traceless/store"
)

// privacyManifest converts the installation's manifest (the generated one
// with its tunnel networks) to its wire form.
func privacyManifest(st *store.Store) (api.PrivacyManifest, error) {
	m, err := st.Manifest()
	if err != nil {
		return api.PrivacyManifest{}, err
	}
	out := api.PrivacyManifest{NeverStored: m.NeverStored}
	for _, t := range m.Tables {
		pt := api.PrivacyTable{Name: t.Name, Subject: t.Subject, Purpose: t.Purpose, Retention: t.Retention}
		for _, c := range t.Columns {
			pt.Columns = append(pt.Columns, api.PrivacyColumn{Name: c.Name, Purpose: c.Purpose})
		}
		out.Tables = append(out.Tables, pt)
	}
	return out, nil
}

func (s *Server) handlePrivacy(c echo.Context) error {
	m, err := privacyManifest(s.store)
	if err != nil {
		return err
	}
	m.ThirdParties = s.thirdParties()
	return c.JSON(http.StatusOK, m)
}

// thirdParties lists each outside party this installation, as
// configured, shares owner data with, and exactly what it receives: the
// payment provider, the mail relay and the single sign-on providers. A
// party appears here as soon as it is configured.
func (s *Server) thirdParties() []api.PrivacyThirdParty {
	out := []api.PrivacyThirdParty{}
	if s.billing.stripe != nil {
		out = append(out, api.PrivacyThirdParty{
			Name: "Stripe (stripe.com)",
			Purpose: "payment provider for paid plans, chosen by the operator; used only for owners who buy a plan. " +
				"Stripe keeps card data, billing addresses and invoices itself, as tax law requires, under its own privacy policy",
			Receives: billing.Receives,
		})
	}
	if cfg := s.opts.Alerts.SMTP; cfg.Enabled() {
		out = append(out, api.PrivacyThirdParty{
			Name:    "the mail server " + cfg.Addr,
			Purpose: "relays the mail this server sends, chosen by the operator",
			Receives: "each mail: the owner's email address and the mail's text — sign-in links (email verification, password reset) " +
				"and, for owners who choose email alerts, node and pool status alerts. No end user's data",
		})
	}
	for _, p := range s.oidc.list {
		out = append(out, api.PrivacyThirdParty{
			Name:    p.cfg.Label + " (" + p.cfg.Issuer + ")",
			Purpose: "single sign-on (OpenID Connect) provider, chosen by the operator; used only by those who sign in with it",
			Receives: "each sign-in made through it: that this person signs in to this service, and when. It sends back the " +
				"subject it names the person by, which is stored with the account (owner_identities), and an email that is not stored " +
				"unless the person signs up with it",
		})
	}
	return out
}
