package ca

import "errors"

var (
	// ErrRotationInProgress: Rotate was called while a rotation is in
	// progress; finish it first.
	ErrRotationInProgress = errors.New("ca: a root rotation is already in progress")
	// ErrNoRotation: FinishRotation was called with no rotation in progress.
	ErrNoRotation = errors.New("ca: no root rotation in progress")
	// ErrExternal: the roots belong to an external PKI (Options.CertFile),
	// so the CA cannot rotate them; replace the files and restart instead.
	ErrExternal = errors.New("ca: the roots are managed by an external PKI")
	// ErrExpired: the issuing intermediate (or a certificate above it) has
	// expired, so nothing can be issued.
	ErrExpired = errors.New("ca: the issuing certificate has expired")
)

// Reason says why a certificate request was refused.
type Reason string

// Reasons of a RequestError.
const (
	// ReasonMalformed: the CSR does not parse.
	ReasonMalformed Reason = "malformed"
	// ReasonSignature: the CSR's self-signature does not verify.
	ReasonSignature Reason = "signature"
	// ReasonKey: the key type or size is not accepted.
	ReasonKey Reason = "key"
	// ReasonSAN: the CSR has names other than exactly one URI (DNS, email,
	// IP, a second URI, or no URI at all), or SignServing got an invalid
	// DNS name or IP.
	ReasonSAN Reason = "san"
	// ReasonIDMismatch: the CSR's URI is not the SPIFFE ID being issued.
	ReasonIDMismatch Reason = "id_mismatch"
	// ReasonTrustDomain: the SPIFFE ID is empty or outside the CA's trust
	// domain.
	ReasonTrustDomain Reason = "trust_domain"
	// ReasonTTL: the requested lifetime is negative.
	ReasonTTL Reason = "ttl"
)

// RequestError is returned by Sign and SignServing when they refuse a
// request; the caller maps it to a status (it is the requester's fault).
// Detail explains the refusal for humans and never holds key material.
type RequestError struct {
	Reason Reason
	Detail string
	// Err is the underlying error, if any (for example the parse error of
	// a malformed CSR).
	Err error
}

func (e *RequestError) Error() string {
	return "ca: certificate request refused (" + string(e.Reason) + "): " + e.Detail
}

func (e *RequestError) Unwrap() error { return e.Err }

func refuse(reason Reason, detail string, err error) *RequestError {
	if err != nil {
		detail += ": " + err.Error()
	}
	return &RequestError{Reason: reason, Detail: detail, Err: err}
}
