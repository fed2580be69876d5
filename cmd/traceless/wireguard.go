package main

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"os"
	"strings"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// keyPair is a WireGuard key pair generated on this machine. The private
// half is never sent anywhere.
type keyPair struct {
	private wgtypes.Key
	public  wgtypes.Key
}

func generateKeyPair() (keyPair, error) {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return keyPair{}, fmt.Errorf("generate key: %w", err)
	}
	return keyPair{private: k, public: k.PublicKey()}, nil
}

// parsePublicKey checks a base64 WireGuard public key.
func parsePublicKey(s string) (string, error) {
	k, err := wgtypes.ParseKey(strings.TrimSpace(s))
	if err != nil {
		return "", usagef("--public-key is not a WireGuard key (44 characters of base64)")
	}
	return k.String(), nil
}

// readPrivateKey reads a base64 private key from a file, as wg genkey
// writes it.
func readPrivateKey(path string) (wgtypes.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("read private key: %w", err)
	}
	if len(b) > 1024 {
		return wgtypes.Key{}, errors.New("the private key file is not a WireGuard key")
	}
	k, err := wgtypes.ParseKey(strings.TrimSpace(string(b)))
	if err != nil {
		// Never echo the file's content: it is meant to be secret.
		return wgtypes.Key{}, errors.New("the private key file is not a WireGuard key (44 characters of base64)")
	}
	return k, nil
}

// insertPrivateKey replaces the value of the PrivateKey line of the
// [Interface] section of a wg-quick file, which the server leaves as a
// placeholder, with key.
func insertPrivateKey(conf string, key wgtypes.Key) (string, error) {
	lines := strings.SplitAfter(conf, "\n")
	section := ""
	for i, l := range lines {
		s := strings.TrimSpace(l)
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			section = strings.ToLower(s)
			continue
		}
		name, _, ok := strings.Cut(s, "=")
		if !ok || section != "[interface]" || !strings.EqualFold(strings.TrimSpace(name), "PrivateKey") {
			continue
		}
		end := l[len(strings.TrimRight(l, "\r\n")):]
		lines[i] = "PrivateKey = " + key.String() + end
		return strings.Join(lines, ""), nil
	}
	return "", errors.New("the config has no PrivateKey line in its [Interface] section")
}

// qrPNG renders text as a PNG QR code, as the server does, so a config that
// holds a private key never has to leave this machine to become one.
func qrPNG(text string) ([]byte, error) {
	code, err := qr.Encode(text, qr.M, qr.Auto)
	if err != nil {
		return nil, fmt.Errorf("encode QR code: %w", err)
	}
	scaled, err := barcode.Scale(code, 512, 512)
	if err != nil {
		return nil, fmt.Errorf("encode QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, scaled); err != nil {
		return nil, fmt.Errorf("encode QR code: %w", err)
	}
	return buf.Bytes(), nil
}
