package pipeline

import (
	"bytes"
	"compress/gzip"
	"errors"
	"slices"
	"strings"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Caps on what a module's analysis lists, so that one module cannot fill a
// report.
const (
	maxImportNames = 64
	maxExports     = 64
)

// wasmStat is the static analysis of a module's binary: what it imports by
// module, what it exports, its memories and the target_features custom
// section. It reads only the module's structure, never runs it.
type wasmStat struct {
	Imports  map[string][]string // module → names, in order, at most maxImportNames each
	ImportN  int
	omitted  map[string]int // module → names not listed
	Exports  []string       // "func name", "memory memory", …
	Memories []wasmMemory
	Features []string
	// RefTypes: a function imported or exported has an externref, funcref
	// or GC reference type in its signature, or a table of them is
	// imported or exported.
	RefTypes bool
	// Atomics: the module declares shared memory or the atomics feature.
	Atomics bool
}

type wasmMemory struct {
	Min, Max   uint64
	HasMax     bool
	Shared     bool
	Imported   bool
	Memory64   bool
	ImportedAs string
}

var errWasm = errors.New("not a valid wasm module")

type wasmReader struct {
	b   []byte
	off int
	err error
}

func (r *wasmReader) byte() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.err = errWasm
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *wasmReader) uleb() uint64 {
	var v uint64
	for shift := 0; shift < 64; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.err = errWasm
	return 0
}

func (r *wasmReader) bytes(n uint64) []byte {
	if r.err != nil || n > uint64(len(r.b)-r.off) {
		r.err = errWasm
		return nil
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

func (r *wasmReader) name() string { return string(r.bytes(r.uleb())) }

// isRefType reports whether a value type byte is a reference type
// (funcref, externref, or a GC/typed-function reference).
func isRefType(t byte) bool {
	return t == 0x70 || t == 0x6f || (t >= 0x63 && t <= 0x6e) || (t >= 0x71 && t <= 0x74)
}

// valType reads a value type, returning whether it is a reference.
func (r *wasmReader) valType() bool {
	t := r.byte()
	switch {
	case t == 0x64 || t == 0x63: // (ref ht) / (ref null ht): heap type follows (s33)
		r.sleb()
		return true
	case isRefType(t):
		return true
	}
	return false
}

func (r *wasmReader) sleb() int64 {
	var v int64
	var shift uint
	for shift < 64 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v
		}
	}
	r.err = errWasm
	return 0
}

func (r *wasmReader) limits() wasmMemory {
	var m wasmMemory
	flags := r.uleb()
	m.HasMax = flags&1 != 0
	m.Shared = flags&2 != 0
	m.Memory64 = flags&4 != 0
	m.Min = r.uleb()
	if m.HasMax {
		m.Max = r.uleb()
	}
	return m
}

// analyzeWasm parses a module's structure.
func analyzeWasm(b []byte) (*wasmStat, error) {
	if len(b) < 8 || !bytes.Equal(b[:4], []byte("\x00asm")) {
		return nil, errWasm
	}
	if b[4] != 1 || b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return nil, errors.New("wasm module is not binary format version 1 (a component?)")
	}
	st := &wasmStat{Imports: map[string][]string{}, omitted: map[string]int{}}
	var typeRef []bool // per type index: has a reference type in its signature
	var funcTypes []uint64
	r := &wasmReader{b: b, off: 8}
	for r.off < len(b) && r.err == nil {
		id := r.byte()
		size := r.uleb()
		body := r.bytes(size)
		if r.err != nil {
			break
		}
		s := &wasmReader{b: body}
		switch id {
		case 0:
			name := s.name()
			if name == "target_features" && s.err == nil {
				n := s.uleb()
				for i := uint64(0); i < n && s.err == nil; i++ {
					prefix := s.byte()
					f := s.name()
					if s.err == nil {
						st.Features = append(st.Features, string(prefix)+f)
						if f == "atomics" || f == "shared-mem" {
							st.Atomics = st.Atomics || prefix != '-'
						}
					}
				}
			}
		case 1:
			n := s.uleb()
			for i := uint64(0); i < n && s.err == nil; i++ {
				form := s.byte()
				if form != 0x60 { // rec/sub groups: GC types; the module already uses references
					st.RefTypes = true
					typeRef = nil
					s.err = errWasm
					break
				}
				ref := false
				for k, np := 0, s.uleb(); uint64(k) < np && s.err == nil; k++ {
					ref = s.valType() || ref
				}
				for k, nr := 0, s.uleb(); uint64(k) < nr && s.err == nil; k++ {
					ref = s.valType() || ref
				}
				typeRef = append(typeRef, ref)
			}
			if s.err != nil && !st.RefTypes {
				return nil, errWasm
			}
		case 2:
			n := s.uleb()
			for i := uint64(0); i < n && s.err == nil; i++ {
				mod, field := s.name(), s.name()
				kind := s.byte()
				switch kind {
				case 0:
					ti := s.uleb()
					funcTypes = append(funcTypes, ti)
					if ti < uint64(len(typeRef)) && typeRef[ti] {
						st.RefTypes = true
					}
				case 1:
					s.valType()
					s.limits()
					st.RefTypes = true
				case 2:
					m := s.limits()
					m.Imported, m.ImportedAs = true, mod+"."+field
					st.Memories = append(st.Memories, m)
				case 3:
					if s.valType() {
						st.RefTypes = true
					}
					s.byte()
				case 4:
					s.byte()
					s.uleb()
				default:
					s.err = errWasm
				}
				st.ImportN++
				if len(st.Imports[mod]) < maxImportNames {
					st.Imports[mod] = append(st.Imports[mod], field)
				} else {
					st.omitted[mod]++
				}
			}
		case 3:
			n := s.uleb()
			for i := uint64(0); i < n && s.err == nil; i++ {
				funcTypes = append(funcTypes, s.uleb())
			}
		case 5:
			n := s.uleb()
			for i := uint64(0); i < n && s.err == nil; i++ {
				st.Memories = append(st.Memories, s.limits())
			}
		case 7:
			n := s.uleb()
			for i := uint64(0); i < n && s.err == nil; i++ {
				name := s.name()
				kind := s.byte()
				idx := s.uleb()
				var k string
				switch kind {
				case 0:
					k = "func"
					if idx < uint64(len(funcTypes)) {
						if ti := funcTypes[idx]; ti < uint64(len(typeRef)) && typeRef[ti] {
							st.RefTypes = true
						}
					}
				case 1:
					k = "table"
					st.RefTypes = true
				case 2:
					k = "memory"
				case 3:
					k = "global"
				case 4:
					k = "tag"
				default:
					k = "unknown"
				}
				st.Exports = append(st.Exports, k+" "+name)
			}
		}
		if s.err != nil && id != 1 {
			return nil, errWasm
		}
	}
	if r.err != nil {
		return nil, errWasm
	}
	for _, m := range st.Memories {
		if m.Shared {
			st.Atomics = true
		}
	}
	return st, nil
}

// gzipSize is the size of b compressed by gzip at the default level.
func gzipSize(b []byte) uint64 {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return uint64(buf.Len())
}

// moduleReport turns the analysis into a report entry. The gzip size is
// computed only for deployable modules (withGzip): test binaries are large
// debug builds whose compressed size means nothing.
func (st *wasmStat) moduleReport(name string, b []byte, withGzip bool) registry.WasmModule {
	m := registry.WasmModule{Name: name, Size: uint64(len(b)), RefTypes: st.RefTypes, Features: st.Features}
	if withGzip {
		m.Gzip = gzipSize(b)
	}
	mods := make([]string, 0, len(st.Imports))
	for k := range st.Imports {
		mods = append(mods, k)
	}
	slices.Sort(mods)
	for _, mod := range mods {
		names := slices.Clone(st.Imports[mod])
		slices.Sort(names)
		m.Imports = append(m.Imports, registry.ImportModule{Module: mod, Names: names, Omitted: uint64(st.omitted[mod])})
	}
	exports := slices.Clone(st.Exports)
	slices.Sort(exports)
	if len(exports) > maxExports {
		m.ExportsOmitted = uint64(len(exports) - maxExports)
		exports = exports[:maxExports]
	}
	m.Exports = exports
	if len(st.Memories) > 0 {
		mem := st.Memories[0]
		m.MemMin, m.MemShared, m.MemImported = mem.Min, mem.Shared, mem.Imported
		if mem.HasMax {
			m.MemMax = mem.Max
		}
	}
	return m
}

// importsFrom reports whether the module imports anything from a module
// whose name has the given prefix.
func (st *wasmStat) importsFrom(prefix string) bool {
	for mod := range st.Imports {
		if strings.HasPrefix(mod, prefix) {
			return true
		}
	}
	return false
}
