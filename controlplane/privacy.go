package controlplane

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
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

// thirdParties lists the configured single sign-on providers: each sees
// the sign-ins made through it.
func (s *Server) thirdParties() []api.PrivacyThirdParty {
	out := []api.PrivacyThirdParty{}
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
