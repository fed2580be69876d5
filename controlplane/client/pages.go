package client

import (
	"context"
	"errors"
	"iter"
	"net/url"
	"strconv"
)

// ListOptions selects a page of a list endpoint.
type ListOptions struct {
	// Cursor is the NextCursor of the previous page; "" for the first.
	Cursor string
	// Limit is the page size (1-500); 0 leaves the server's default (50).
	Limit int
}

func (o ListOptions) values() url.Values {
	v := url.Values{}
	if o.Cursor != "" {
		v.Set("cursor", o.Cursor)
	}
	if o.Limit > 0 {
		v.Set("limit", strconv.Itoa(o.Limit))
	}
	return v
}

// errCursorLoop stops an iterator whose server repeats a cursor.
var errCursorLoop = errors.New("server returned the same cursor twice")

// pages walks every page that fetch returns, following next cursors. A
// failed fetch is yielded once as the final element.
func pages[T any](ctx context.Context, pageSize int, fetch func(context.Context, ListOptions) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		opts := ListOptions{Limit: pageSize}
		for {
			items, next, err := fetch(ctx, opts)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			if next == opts.Cursor {
				yield(zero, errCursorLoop)
				return
			}
			opts.Cursor = next
		}
	}
}
