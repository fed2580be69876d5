package lint

import "testing"

// TestUpdate holds an ineffectual assignment (the first value of n): test
// code is not linted, so it must not be reported.
func TestUpdate(t *testing.T) {
	n, err := Update(true)
	n = 2
	t.Log(n, err)
}
