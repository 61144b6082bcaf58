// Package atomicfile replaces files so that a crash leaves the old content or the new,
// never a mix: the agent's journal, its update record and its config file are written
// this way.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// TempSuffix ends the name of the temporary file WriteFile writes beside the final one; a
// crash may leave one behind, which holds nothing anyone was promised and may be removed.
const TempSuffix = ".tmp"

// WriteFile writes data to a temporary file in path's directory with mode perm, fsyncs
// it, renames it over path and fsyncs the directory, so that the rename survives a crash
// too. On error path is unchanged and the temporary file is gone.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*"+TempSuffix)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making a rename or removal in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
