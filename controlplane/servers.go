package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"net/http"
	"strings"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"
	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

func (s *Server) serverViews(c echo.Context, ownerID string) ([]api.Server, error) {
	servers, err := s.store.ListServers(c.Request().Context(), ownerID)
	if err != nil {
		return nil, err
	}
	out := make([]api.Server, len(servers))
	for i, v := range servers {
		out[i] = s.serverView(v)
	}
	return out, nil
}

func (s *Server) serverView(v store.Server) api.Server {
	return api.Server{ID: v.ID, Name: v.Name, Pool: v.PoolName, Region: v.Region, Country: v.Country, City: v.City,
		Endpoint: v.Endpoint, PublicKey: v.PublicKey, Online: s.nodeOnline(v.ID)}
}

func (s *Server) handleListServers(c echo.Context) error {
	list, err := s.serverList(c, currentApp(c).ownerID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, list)
}

// serverList is the servers the owner's devices may use and, when there
// are none, why: an empty list alone leaves an owner guessing.
func (s *Server) serverList(c echo.Context, ownerID string) (api.ServerList, error) {
	servers, err := s.serverViews(c, ownerID)
	if err != nil || len(servers) > 0 {
		return api.ServerList{Servers: servers}, err
	}
	g, err := s.store.GetServerGrant(c.Request().Context(), ownerID)
	if err != nil {
		return api.ServerList{}, err
	}
	return api.ServerList{Servers: servers, Explanation: noServersExplanation(g)}, nil
}

// noServersExplanation says why an owner with grant g has no server.
func noServersExplanation(g store.ServerGrant) *api.Explanation {
	if g.PlanPools == 0 && g.OwnPools == 0 {
		return &api.Explanation{Code: api.NoServersPlanIncludesNoPool, Message: fmt.Sprintf(
			"Your plan (%s) includes no server pool, so there is no server to offer; ask the operator to include a pool in it, or change to a plan that includes one.",
			g.PlanName)}
	}
	msg := "The server pools your plan includes have no enabled node yet; servers appear as soon as the operator enrolls one or enables a disabled one."
	if g.OwnPools > 0 {
		msg = "Neither the server pools your plan includes nor your dedicated pools have an enabled node yet; servers appear as soon as one is enrolled (or a disabled one enabled)."
		if g.PlanPools == 0 {
			msg = "Your dedicated pools have no enabled node yet, and your plan includes no shared server pool; servers appear as soon as you enroll a node into one of your pools."
		}
	}
	return &api.Explanation{Code: api.NoServersNoEnabledNode, Message: msg}
}

// privateKeyPlaceholder stands where the device's private key goes. The
// server never generates or sees end-user private keys.
const privateKeyPlaceholder = "<device private key: generated and kept on the device>"

// wgQuickConfig renders a wg-quick file for device d on node v.
func (s *Server) wgQuickConfig(d store.Device, v store.Server) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Traceless device %s on %s (%s)\n", d.ID, v.Name, v.Region)
	b.WriteString("[Interface]\n")
	fmt.Fprintf(&b, "PrivateKey = %s\n", privateKeyPlaceholder)
	fmt.Fprintf(&b, "Address = %s/32, %s/128\n", d.IPv4, d.IPv6)
	if len(s.opts.ClientDNS) > 0 {
		fmt.Fprintf(&b, "DNS = %s\n", strings.Join(s.opts.ClientDNS, ", "))
	}
	b.WriteString("\n[Peer]\n")
	fmt.Fprintf(&b, "PublicKey = %s\n", v.PublicKey)
	fmt.Fprintf(&b, "Endpoint = %s\n", v.Endpoint)
	b.WriteString("AllowedIPs = 0.0.0.0/0, ::/0\n")
	return b.String()
}

// handleDeviceConfig returns the wg-quick file, or with format=qr a PNG QR
// code of it, for one of the app's devices on a server it may use.
func (s *Server) handleDeviceConfig(c echo.Context) error {
	nodeID := c.QueryParam("server")
	if nodeID == "" {
		return badRequest("server", "is required: the id of a server from GET /api/v1/servers")
	}
	format := c.QueryParam("format")
	if format != "" && format != "conf" && format != "qr" {
		return badRequest("format", "must be conf or qr")
	}
	a := currentApp(c)
	ctx := c.Request().Context()
	d, err := s.store.GetDevice(ctx, a.appID, c.Param("device_id"))
	if err != nil {
		return err
	}
	v, err := s.store.GetServer(ctx, a.ownerID, nodeID)
	if errors.Is(err, store.ErrNotFound) {
		return badRequest("server", "is not a server this app may use")
	}
	if err != nil {
		return err
	}
	return writeDeviceConfig(c, s.wgQuickConfig(d, v), format)
}

// writeDeviceConfig answers with a wg-quick file to download or, for
// format "qr", its PNG QR code.
func writeDeviceConfig(c echo.Context, conf, format string) error {
	if format != "qr" {
		c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="traceless.conf"`)
		return c.Blob(http.StatusOK, "text/plain; charset=utf-8", []byte(conf))
	}
	png, err := qrPNG(conf)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, "image/png", png)
}

// qrPNG encodes text as a 512x512 QR code.
func qrPNG(text string) ([]byte, error) {
	code, err := qr.Encode(text, qr.M, qr.Auto)
	if err != nil {
		return nil, err
	}
	scaled, err := barcode.Scale(code, 512, 512)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, scaled); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
