package api

import (
	"bytes"
	"encoding/json"
)

// UnmarshalJSON records that the field was present, and whether it was null.
func (n *NullableString) UnmarshalJSON(b []byte) error {
	n.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		n.Value = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	n.Value = &s
	return nil
}

// MarshalJSON writes null or the string.
func (n NullableString) MarshalJSON() ([]byte, error) {
	if n.Value == nil {
		return []byte("null"), nil
	}
	return json.Marshal(*n.Value)
}

// IsZero lets encoders with omitzero skip an unset field.
func (n NullableString) IsZero() bool { return !n.Set }
