// Package gormsqlite is gorm's SQLite dialector (gorm.io/driver/sqlite
// v1.6.0, MIT licence, see LICENSE) without its import of
// github.com/mattn/go-sqlite3: that import registers a cgo driver (or,
// built without cgo, a stub) under the name "sqlite3", which the store's
// pure-Go driver (github.com/ncruces/go-sqlite3) registers. The code is
// otherwise unchanged but for two lint findings (an unused method, a
// break that did nothing); the store opens it with DriverName "sqlite3".
package gormsqlite
