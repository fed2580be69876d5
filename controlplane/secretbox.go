package controlplane

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// secretBox encrypts the secrets the store must keep readable (TOTP
// secrets) with AES-256-GCM. It holds one or more keys: the first seals,
// any of them opens, so a new key can be put first while secrets sealed
// under the old one are re-sealed (Server.Bootstrap does that at start).
//
// A sealed secret is "v1.<key id>.<base64url(nonce | ciphertext)>": the key
// id is the first 4 bytes of the key's SHA-256, in hex, so the box knows
// which key to open with. The additional data binds a secret to its
// owner, so a secret copied onto another owner's row does not open.
type secretBox struct {
	aeads []cipher.AEAD
	ids   []string
}

// newSecretBox builds a box from 32-byte keys, the sealing key first.
func newSecretBox(keys [][]byte) (*secretBox, error) {
	if len(keys) == 0 {
		return nil, errors.New("secret keys: none given")
	}
	b := &secretBox{}
	seen := map[string]bool{}
	for i, k := range keys {
		if len(k) != 32 {
			return nil, fmt.Errorf("secret key %d: must be 32 bytes, got %d", i+1, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(k)
		id := hex.EncodeToString(sum[:4])
		if seen[id] {
			return nil, fmt.Errorf("secret key %d: listed twice", i+1)
		}
		seen[id] = true
		b.aeads = append(b.aeads, aead)
		b.ids = append(b.ids, id)
	}
	return b, nil
}

const sealVersion = "v1"

func sealAAD(ownerID string) []byte { return []byte("traceless totp secret\x00" + ownerID) }

// seal encrypts plaintext for ownerID under the first key.
func (b *secretBox) seal(ownerID, plaintext string) string {
	aead := b.aeads[0]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	rand.Read(nonce)
	out := aead.Seal(nonce, nonce, []byte(plaintext), sealAAD(ownerID))
	return sealVersion + "." + b.ids[0] + "." + base64.RawURLEncoding.EncodeToString(out)
}

// errSealed is any failure to open a sealed secret. It names no key and
// holds nothing of the secret.
var errSealed = errors.New("sealed secret does not open with any configured secret key")

// open decrypts a sealed secret of ownerID.
func (b *secretBox) open(ownerID, sealed string) (string, error) {
	i, raw, err := b.parse(sealed)
	if err != nil {
		return "", err
	}
	aead := b.aeads[i]
	if len(raw) < aead.NonceSize()+aead.Overhead() {
		return "", errSealed
	}
	pt, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], sealAAD(ownerID))
	if err != nil {
		return "", errSealed
	}
	return string(pt), nil
}

// parse returns the index of the key a sealed secret names and its bytes.
func (b *secretBox) parse(sealed string) (int, []byte, error) {
	parts := strings.Split(sealed, ".")
	if len(parts) != 3 || parts[0] != sealVersion {
		return 0, nil, errSealed
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return 0, nil, errSealed
	}
	for i, id := range b.ids {
		if id == parts[1] {
			return i, raw, nil
		}
	}
	return 0, nil, errSealed
}

// reseal returns sealed under the first key, and whether that changed
// anything: a secret already under the first key is left as it is.
func (b *secretBox) reseal(ownerID, sealed string) (string, bool, error) {
	if i, _, err := b.parse(sealed); err == nil && i == 0 {
		return sealed, false, nil
	}
	pt, err := b.open(ownerID, sealed)
	if err != nil {
		return "", false, err
	}
	return b.seal(ownerID, pt), true, nil
}
