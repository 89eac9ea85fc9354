package store

// Size is the store's size on disk: its LSM tree and its value log, as
// Badger last measured them (it refreshes the figures every minute).
func (db *DB) Size() (lsm, vlog int64) { return db.bdb.Size() }
