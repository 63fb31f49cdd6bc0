package balancer

import (
	"slices"
	"sort"
	"strconv"
)

// Ring sizes when the cluster sets none (Envoy's defaults).
const (
	defaultRingMin = 1024
	defaultRingMax = 8 << 20
	// pointsPerEndpoint sizes the real ring: min(max, max(min, 100·n))
	// (then rounded up to a power of two points per endpoint).
	pointsPerEndpoint = 100
)

// ring is a ketama-style consistent-hash ring: every endpoint owns points
// at mix(FNV-1a("address_i")); a key belongs to the first point at or
// after mix(key), so adding or removing an endpoint moves only the keys
// next to its points. Every Weft proxy builds the same ring from the same
// endpoints. Immutable.
type ring struct {
	hashes []uint64 // sorted
	owner  []int32  // index into eps, parallel to hashes
	eps    []*Endpoint
}

type ringPoint struct {
	hash  uint64
	owner int32
}

// newRing builds the ring of eps; nil when eps is empty.
func newRing(eps []*Endpoint, minSize, maxSize uint64) *ring {
	if len(eps) == 0 {
		return nil
	}
	if minSize == 0 {
		minSize = defaultRingMin
	}
	if maxSize == 0 {
		maxSize = defaultRingMax
	}
	minSize = min(minSize, maxSize)
	size := min(maxSize, max(minSize, pointsPerEndpoint*uint64(len(eps))))
	var total uint64
	for _, e := range eps {
		total += uint64(e.weight)
	}
	// Points per unit of weight: rounded up to a power of two, so that it
	// stays the same when an endpoint comes or goes and only that
	// endpoint's keys move; within maxSize.
	perUnit := uint64(1)
	for perUnit*total < size {
		perUnit *= 2
	}
	if perUnit*total > maxSize {
		perUnit = max(1, maxSize/total)
	}
	points := make([]ringPoint, 0, perUnit*total)
	var buf []byte
	for i, e := range eps {
		buf = append(append(buf[:0], e.Address...), '_')
		prefix := fnv1a(fnvOffset, buf)
		for k := range perUnit * uint64(e.weight) {
			h := fnv1a(prefix, strconv.AppendUint(buf[len(buf):], k, 10))
			points = append(points, ringPoint{hash: mix(h), owner: int32(i)})
		}
	}
	// Ties (vanishingly rare) are broken by address, so that every proxy
	// builds the same ring whatever the endpoints' order.
	slices.SortFunc(points, func(a, b ringPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		case eps[a.owner].Address < eps[b.owner].Address:
			return -1
		case eps[a.owner].Address > eps[b.owner].Address:
			return 1
		}
		return 0
	})
	r := &ring{hashes: make([]uint64, len(points)), owner: make([]int32, len(points)), eps: eps}
	for i, pt := range points {
		r.hashes[i], r.owner[i] = pt.hash, pt.owner
	}
	return r
}

// lookup returns the endpoint owning key, or when f rejects it the next
// one along the ring that f accepts; nil when f rejects them all.
func (r *ring) lookup(key uint64, f *filter) *Endpoint {
	x := mix(key)
	n := len(r.hashes)
	i := sort.Search(n, func(i int) bool { return r.hashes[i] >= x })
	for k := 0; k < n; k++ {
		j := i + k
		if j >= n {
			j -= n
		}
		if e := r.eps[r.owner[j]]; f.ok(e) {
			return e
		}
	}
	return nil
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// fnv1a continues an FNV-1a 64 hash h over b.
func fnv1a(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

// mix is MurmurHash3's 64-bit finaliser. FNV-1a alone barely changes the
// high bits when only the last byte of the input does ("addr_1",
// "addr_2"), which would bunch an endpoint's ring points together.
func mix(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}
