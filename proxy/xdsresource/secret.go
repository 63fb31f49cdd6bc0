package xdsresource

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// decodeSecret decodes an envoy.extensions.transport_sockets.tls.v3.Secret,
// which must be a validation_context holding only an inline trusted_ca.
func decodeSecret(b []byte) (*Secret, error) {
	var (
		s    Secret
		kind oneof
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			s.Name, err = f.string()
			err = at("name", err)
		case 2, 3, 4, 5: // tls_certificate, session_ticket_keys, validation_context, generic_secret
			err = kind.message(f)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if s.Name == "" {
		return nil, at("name", errEmpty)
	}
	switch kind.num {
	case 0:
		return nil, at("validation_context", errMissing)
	case 2:
		return nil, at("tls_certificate", fmt.Errorf("%w: the proxy generates its own key; certificates are not delivered by SDS", errNotSupported))
	case 3:
		return nil, notSupported("session_ticket_keys")
	case 5:
		return nil, notSupported("generic_secret")
	}
	if s.TrustedCA, err = decodeSecretValidation(kind.f.b); err != nil {
		return nil, at("validation_context", err)
	}
	return &s, nil
}

// decodeSecretValidation decodes the CertificateValidationContext of a
// Secret into its trusted CA bundle. Peer matching belongs with the TLS
// context (combined_validation_context.default_validation_context), not
// here.
func decodeSecretValidation(b []byte) ([]byte, error) {
	v, err := decodeCertificateValidation(b)
	switch {
	case err != nil:
		return nil, err
	case len(v.sans) > 0:
		return nil, at("match_typed_subject_alt_names", fmt.Errorf("%w in a secret: set them in the TLS context's combined_validation_context.default_validation_context", errNotSupported))
	case !v.trustedCA.set:
		return nil, at("trusted_ca", errMissing)
	}
	ca, err := decodeInlineBytes(v.trustedCA.b)
	if err == nil {
		err = checkCertificates(ca)
	}
	if err != nil {
		return nil, at("trusted_ca", err)
	}
	return ca, nil
}

// decodeInlineBytes decodes an envoy.config.core.v3.DataSource that must
// hold its data inline (inline_bytes or inline_string), into a copy of the
// data: the proxy reads no file or environment variable on the control
// plane's say.
func decodeInlineBytes(b []byte) ([]byte, error) {
	var (
		spec    oneof
		watched msg
	)
	err := walk(b, func(f field) error {
		switch f.num {
		case 1, 2, 3, 4: // filename, inline_bytes, inline_string, environment_variable
			return spec.scalar(f, protowire.BytesType)
		case 5:
			return at("watched_directory", watched.add(f))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch spec.num {
	case 0:
		return nil, errors.New("one of inline_bytes and inline_string must be set")
	case 1:
		return nil, notSupported("filename")
	case 3:
		if _, err := spec.f.string(); err != nil {
			return nil, at("inline_string", err)
		}
	case 4:
		return nil, notSupported("environment_variable")
	}
	if watched.set {
		return nil, notSupported("watched_directory")
	}
	return bytes.Clone(spec.f.b), nil
}

// checkCertificates checks that b is a PEM bundle of at least one X.509
// certificate, and of nothing else. Text between blocks (such as the
// comments of a CA bundle) is allowed.
func checkCertificates(b []byte) error {
	begins := bytes.Count(b, []byte("-----BEGIN "))
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		n++
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %d is a %q, want only CERTIFICATE blocks", n, block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("PEM block %d: %w", n, err)
		}
	}
	switch {
	case begins > n:
		return errors.New("malformed PEM block")
	case n == 0:
		return errors.New("no PEM certificate found")
	}
	return nil
}
