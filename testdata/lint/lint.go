// Package lint holds the defects the linters of TestLint must report, so
// TestLintCatches can show that they do. It is never built into anything.
package lint

import "errors"

func find() (int, error)   { return 1, nil }
func update() (int, error) { return 0, errors.New("refused") }

// Update shadows err: the error of update is assigned to the inner err and
// lost, and Update reports success.
func Update(ok bool) (int, error) {
	var n int
	var err error
	if ok {
		cur, err := find()
		if err != nil {
			return 0, err
		}
		n, err = update()
		n += cur
	}
	return n, err
}
