// Package store holds Traceless's persistent state: the gorm models, their
// repositories, the ordered migrations and the schema guard.
//
// Every table and column is listed, with its purpose and retention, in the
// privacy manifest generated from the models (see Manifest). Nothing that
// describes what an end user does — addresses they connect from, handshake
// times, byte counts, user agents, device-level timestamps — has a column
// here, and the schema guard (Guard) fails the build when one appears.
//
// Every write commits through writeChange (device admission's prepared
// statements through hotWrite), which then hands the commit hooks
// (OnCommit) what the write changed for node sync: callers cannot forget
// to publish a change. TestCommitHooksSeeEveryWrite calls every exported
// method to keep it so.
//
// Callers never import gorm: repository methods translate database errors to
// ErrNotFound, ErrConflict and friends at the boundary.
//
// store imports the standard library, gorm and its drivers; nothing of ours.
package store
