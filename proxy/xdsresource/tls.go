package xdsresource

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file decodes the TLS parts of listeners and clusters: transport
// sockets and the envoy.extensions.transport_sockets.tls.v3 contexts. The
// proxy's key never travels: certificates and trusted CAs are only named
// here (SDS over ADS) and arrive as Secrets (secret.go).

const (
	// tlsSocket and rawBufferSocket are the names of the transport sockets
	// the proxy has, for a transport_socket without a typed_config.
	tlsSocket       = "envoy.transport_sockets.tls"
	rawBufferSocket = "envoy.transport_sockets.raw_buffer"

	downstreamTLSMessage = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
	upstreamTLSMessage   = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	rawBufferMessage     = "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
)

// decodeTransportSocket decodes an envoy.config.core.v3.TransportSocket,
// which must be TLS with a context of type tlsMessage, or raw_buffer
// (plaintext). It returns the encoded context, or tls false for plaintext.
func decodeTransportSocket(b []byte, tlsMessage string) (context []byte, tls bool, err error) {
	var (
		name   string
		config oneof
	)
	err = walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			name, err = f.string()
			err = at("name", err)
		case 3: // typed_config, the only member of config_type
			err = config.message(f)
		}
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if name == "" {
		return nil, false, at("name", errEmpty)
	}
	if config.num == 0 {
		switch name {
		case tlsSocket:
			return nil, false, at("typed_config", errMissing)
		case rawBufferSocket:
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("transport socket %q: %w", name, errNotSupported)
	}
	a, err := decodeAny(config.f.b)
	if err != nil {
		return nil, false, at("typed_config", err)
	}
	switch typeName(a.typeURL) {
	case tlsMessage:
		return a.value, true, nil
	case rawBufferMessage:
		return nil, false, nil
	}
	return nil, false, at("typed_config", fmt.Errorf("transport socket %q of type %q: %w", name, a.typeURL, errNotSupported))
}

// decodeDownstreamTLS decodes an
// envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext.
func decodeDownstreamTLS(b []byte) (*DownstreamTLS, error) {
	var (
		t             DownstreamTLS
		common        msg
		requireClient msg
		requireSNI    msg
		fullScan      msg
		tickets       oneof
		ocspPolicy    int32
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = at("common_tls_context", common.add(f))
		case 2:
			err = at("require_client_certificate", requireClient.add(f))
		case 3:
			err = at("require_sni", requireSNI.add(f))
		case 4, 5: // session_ticket_keys, session_ticket_keys_sds_secret_config
			err = tickets.message(f)
		case 7: // disable_stateless_session_resumption: harmless
			err = tickets.scalar(f, protowire.VarintType)
		case 8:
			ocspPolicy, err = f.int32()
			err = at("ocsp_staple_policy", err)
		case 9:
			err = at("full_scan_certs_on_sni_mismatch", fullScan.add(f))
		}
		// Skipped as harmless: session_timeout (6),
		// disable_stateful_session_resumption (10) and
		// prefer_client_ciphers (11).
		return err
	})
	if err != nil {
		return nil, err
	}
	switch tickets.num {
	case 4:
		return nil, notSupported("session_ticket_keys")
	case 5:
		return nil, notSupported("session_ticket_keys_sds_secret_config")
	}
	if ocspPolicy != 0 { // LENIENT_STAPLING
		return nil, at("ocsp_staple_policy", fmt.Errorf("%s: %w", enumName(ocspPolicy, ocspPolicyNames), errNotSupported))
	}
	if err := refuseTrue(requireSNI, "require_sni"); err != nil {
		return nil, err
	}
	if err := refuseTrue(fullScan, "full_scan_certs_on_sni_mismatch"); err != nil {
		return nil, err
	}
	if requireClient.set {
		if t.RequireClientCertificate, err = decodeBoolValue(requireClient.b); err != nil {
			return nil, at("require_client_certificate", err)
		}
	}
	if !common.set {
		return nil, at("common_tls_context", errMissing)
	}
	if t.Common, err = decodeCommonTLS(common.b); err != nil {
		return nil, at("common_tls_context", err)
	}
	if t.RequireClientCertificate && t.Common.ValidationSecret == "" {
		return nil, at("require_client_certificate", errors.New("requires a validation context from SDS in common_tls_context to verify the client certificate"))
	}
	return &t, nil
}

var ocspPolicyNames = []string{"LENIENT_STAPLING", "STRICT_STAPLING", "MUST_STAPLE"}

// refuseTrue is the error for m, a google.protobuf.BoolValue field name
// that the proxy cannot honour when true.
func refuseTrue(m msg, name string) error {
	if !m.set {
		return nil
	}
	v, err := decodeBoolValue(m.b)
	switch {
	case err != nil:
		return at(name, err)
	case v:
		return notSupported(name)
	}
	return nil
}

// decodeUpstreamTLS decodes an
// envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext.
func decodeUpstreamTLS(b []byte) (*UpstreamTLS, error) {
	var (
		t                   UpstreamTLS
		common              msg
		renegotiation       bool
		autoSNI, autoSNISAN bool
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = at("common_tls_context", common.add(f))
		case 2:
			t.SNI, err = f.string()
			err = at("sni", err)
		case 3:
			renegotiation, err = f.bool()
			err = at("allow_renegotiation", err)
		case 6:
			autoSNI, err = f.bool()
			err = at("auto_host_sni", err)
		case 7:
			autoSNISAN, err = f.bool()
			err = at("auto_sni_san_validation", err)
		}
		// Skipped as harmless: max_session_keys (4) and
		// enforce_rsa_key_usage (5).
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case renegotiation:
		return nil, notSupported("allow_renegotiation")
	case autoSNI:
		return nil, notSupported("auto_host_sni")
	case autoSNISAN:
		return nil, notSupported("auto_sni_san_validation")
	case !common.set:
		return nil, at("common_tls_context", errMissing)
	}
	if t.Common, err = decodeCommonTLS(common.b); err != nil {
		return nil, at("common_tls_context", err)
	}
	if t.Common.ValidationSecret == "" {
		return nil, at("common_tls_context", errors.New("a validation context from SDS (combined_validation_context or validation_context_sds_secret_config) is required: the proxy verifies every upstream"))
	}
	return &t, nil
}

// decodeCommonTLS decodes an
// envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.
func decodeCommonTLS(b []byte) (CommonTLS, error) {
	var (
		c          CommonTLS
		params     msg
		certs      [][]byte
		validation oneof
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = at("tls_params", params.add(f))
		case 2:
			err = at("tls_certificates", fmt.Errorf("%w: the proxy's key and certificate never travel; name an SDS secret in tls_certificate_sds_secret_configs", errNotSupported))
		case 6:
			var cb []byte
			cb, err = f.message()
			certs = append(certs, cb)
			err = atIndex("tls_certificate_sds_secret_configs", len(certs)-1, err)
		case 3, 7, 8, 10, 12: // validation_context_type
			err = validation.message(f)
		case 4:
			var alpn string
			alpn, err = f.string()
			if err == nil && (alpn == "" || len(alpn) > 255) {
				err = fmt.Errorf("%q: a protocol name is 1 to 255 bytes", alpn)
			}
			c.ALPN = append(c.ALPN, alpn)
			err = atIndex("alpn_protocols", len(c.ALPN)-1, err)
		case 9:
			err = notSupported("tls_certificate_certificate_provider")
		case 11:
			err = notSupported("tls_certificate_certificate_provider_instance")
		case 13:
			err = notSupported("custom_handshaker")
		case 14:
			err = notSupported("tls_certificate_provider_instance")
		case 15:
			err = notSupported("key_log")
		case 16:
			err = notSupported("custom_tls_certificate_selector")
		}
		return err
	})
	if err != nil {
		return CommonTLS{}, err
	}

	if params.set {
		if c.MinVersion, c.MaxVersion, err = decodeTLSParams(params.b); err != nil {
			return CommonTLS{}, at("tls_params", err)
		}
	}

	if len(certs) != 1 {
		return CommonTLS{}, at("tls_certificate_sds_secret_configs", fmt.Errorf("want exactly 1 SDS secret with the certificate, have %d", len(certs)))
	}
	if c.CertificateSecret, err = decodeSDSSecretConfig(certs[0]); err != nil {
		return CommonTLS{}, atIndex("tls_certificate_sds_secret_configs", 0, err)
	}

	switch validation.num {
	case 3:
		if c.MatchSANs, err = decodeValidationContext(validation.f.b); err != nil {
			return CommonTLS{}, at("validation_context", err)
		}
	case 7:
		if c.ValidationSecret, err = decodeSDSSecretConfig(validation.f.b); err != nil {
			return CommonTLS{}, at("validation_context_sds_secret_config", err)
		}
	case 8:
		if c.ValidationSecret, c.MatchSANs, err = decodeCombinedValidation(validation.f.b); err != nil {
			return CommonTLS{}, at("combined_validation_context", err)
		}
	case 10:
		return CommonTLS{}, notSupported("validation_context_certificate_provider")
	case 12:
		return CommonTLS{}, notSupported("validation_context_certificate_provider_instance")
	}
	if len(c.MatchSANs) > 0 && c.ValidationSecret == "" {
		return CommonTLS{}, errors.New("match_typed_subject_alt_names requires a trusted CA from SDS (combined_validation_context.validation_context_sds_secret_config)")
	}
	return c, nil
}

// tlsVersions maps the values of the
// envoy.extensions.transport_sockets.tls.v3.TlsParameters.TlsProtocol enum to
// TLS version numbers; TLS_AUTO is 0.
var tlsVersions = []uint16{0, 0x0301, 0x0302, 0x0303, 0x0304}

var tlsVersionNames = []string{"TLS_AUTO", "TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3"}

// decodeTLSParams decodes an
// envoy.extensions.transport_sockets.tls.v3.TlsParameters into its protocol
// versions. The proxy uses Go's choice of cipher suites, curves and
// signature algorithms: setting them is an error.
func decodeTLSParams(b []byte) (minVersion, maxVersion uint16, err error) {
	var minEnum, maxEnum int32
	err = walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			minEnum, err = f.int32()
			err = at("tls_minimum_protocol_version", err)
		case 2:
			maxEnum, err = f.int32()
			err = at("tls_maximum_protocol_version", err)
		case 3:
			err = notSupported("cipher_suites")
		case 4:
			err = notSupported("ecdh_curves")
		case 5:
			err = notSupported("signature_algorithms")
		case 6:
			if packedNonEmpty(f) {
				err = notSupported("compliance_policies")
			}
		}
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	if minVersion, err = tlsVersion(minEnum); err != nil {
		return 0, 0, at("tls_minimum_protocol_version", err)
	}
	if maxVersion, err = tlsVersion(maxEnum); err != nil {
		return 0, 0, at("tls_maximum_protocol_version", err)
	}
	if minVersion != 0 && maxVersion != 0 && minVersion > maxVersion {
		return 0, 0, fmt.Errorf("tls_minimum_protocol_version %s is above tls_maximum_protocol_version %s",
			enumName(minEnum, tlsVersionNames), enumName(maxEnum, tlsVersionNames))
	}
	return minVersion, maxVersion, nil
}

// tlsVersion is the TLS version number of TlsProtocol value v, which must
// be TLS_AUTO (0) or at least TLSv1_2.
func tlsVersion(v int32) (uint16, error) {
	switch {
	case v < 0 || int(v) >= len(tlsVersions):
		return 0, fmt.Errorf("%s: %w", enumName(v, tlsVersionNames), errNotSupported)
	case v != 0 && tlsVersions[v] < 0x0303:
		return 0, fmt.Errorf("%s: %w: weft requires TLS 1.2 or later", tlsVersionNames[v], errNotSupported)
	}
	return tlsVersions[v], nil
}

// packedNonEmpty reports whether f, an occurrence of a repeated scalar
// field, holds an element: anything but an empty packed encoding, which the
// generated code reads as no element at all.
func packedNonEmpty(f field) bool {
	return f.typ != protowire.BytesType || len(f.b) > 0
}

// decodeSDSSecretConfig decodes an
// envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig into the name
// of its secret, which must come by ADS.
func decodeSDSSecretConfig(b []byte) (string, error) {
	var (
		name   string
		source msg
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			name, err = f.string()
			err = at("name", err)
		case 2:
			err = at("sds_config", source.add(f))
		}
		return err
	})
	switch {
	case err != nil:
		return "", err
	case name == "":
		return "", at("name", errEmpty)
	case source.set:
		if err := checkADS(source.b); err != nil {
			return "", at("sds_config", err)
		}
	}
	return name, nil
}

// checkADS checks that an envoy.config.core.v3.ConfigSource names ADS.
func checkADS(b []byte) error {
	var source oneof
	err := walk(b, func(f field) error {
		switch f.num {
		case 1: // path
			return source.scalar(f, protowire.BytesType)
		case 2, 3, 5, 8: // api_config_source, ads, self, path_config_source
			return source.message(f)
		}
		return nil
	})
	if err != nil {
		return err
	}
	switch source.num {
	case 0:
		return errors.New("ads must be set: the proxy takes secrets only over ADS")
	case 3:
		return nil
	}
	name := map[protowire.Number]string{1: "path", 2: "api_config_source", 5: "self", 8: "path_config_source"}[source.num]
	return fmt.Errorf("%s: %w: the proxy takes secrets only over ADS", name, errNotSupported)
}

// decodeCombinedValidation decodes an
// envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext.
func decodeCombinedValidation(b []byte) (secret string, sans []SANMatcher, err error) {
	var defaults, sds msg
	err = walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = at("default_validation_context", defaults.add(f))
		case 2:
			err = at("validation_context_sds_secret_config", sds.add(f))
		case 3:
			err = notSupported("validation_context_certificate_provider")
		case 4:
			err = notSupported("validation_context_certificate_provider_instance")
		}
		return err
	})
	switch {
	case err != nil:
		return "", nil, err
	case !sds.set:
		return "", nil, at("validation_context_sds_secret_config", errMissing)
	}
	if secret, err = decodeSDSSecretConfig(sds.b); err != nil {
		return "", nil, at("validation_context_sds_secret_config", err)
	}
	if defaults.set {
		if sans, err = decodeValidationContext(defaults.b); err != nil {
			return "", nil, at("default_validation_context", err)
		}
	}
	return secret, sans, nil
}

// validationContext is a decoded
// envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext.
type validationContext struct {
	trustedCA msg // the DataSource
	sans      []SANMatcher
}

// decodeValidationContext decodes the CertificateValidationContext of a TLS
// context into its SAN matchers: the trusted CA must come by SDS.
func decodeValidationContext(b []byte) ([]SANMatcher, error) {
	v, err := decodeCertificateValidation(b)
	switch {
	case err != nil:
		return nil, err
	case v.trustedCA.set:
		return nil, at("trusted_ca", fmt.Errorf("%w: the trusted CA must come by SDS (combined_validation_context or validation_context_sds_secret_config)", errNotSupported))
	}
	return v.sans, nil
}

// decodeCertificateValidation decodes an
// envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext.
// What would weaken or change the proxy's verification of a peer, and that
// it cannot honour, is an error.
func decodeCertificateValidation(b []byte) (validationContext, error) {
	var (
		v                 validationContext
		sans              [][]byte
		requireSCT        msg
		maxDepth          msg
		allowExpired      bool
		trustVerification int32
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = at("trusted_ca", v.trustedCA.add(f))
		case 15:
			var sb []byte
			sb, err = f.message()
			sans = append(sans, sb)
			err = atIndex("match_typed_subject_alt_names", len(sans)-1, err)
		case 2:
			err = notSupported("verify_certificate_hash")
		case 3:
			err = notSupported("verify_certificate_spki")
		case 6:
			err = at("require_signed_certificate_timestamp", requireSCT.add(f))
		case 7:
			err = notSupported("crl")
		case 8:
			allowExpired, err = f.bool()
			err = at("allow_expired_certificate", err)
		case 9:
			err = at("match_subject_alt_names", fmt.Errorf("%w: use match_typed_subject_alt_names", errNotSupported))
		case 10:
			trustVerification, err = f.int32()
			err = at("trust_chain_verification", err)
		case 11:
			err = notSupported("watched_directory")
		case 12:
			err = notSupported("custom_validator_config")
		case 13:
			err = notSupported("ca_certificate_provider_instance")
		case 16:
			err = at("max_verify_depth", maxDepth.add(f))
		case 17:
			err = notSupported("system_root_certs")
		}
		// Skipped as harmless: only_verify_leaf_cert_crl (14), without a
		// crl, and suppress_client_ca_list (18).
		return err
	})
	switch {
	case err != nil:
		return validationContext{}, err
	case allowExpired:
		return validationContext{}, notSupported("allow_expired_certificate")
	case trustVerification != 0: // VERIFY_TRUST_CHAIN
		return validationContext{}, at("trust_chain_verification", fmt.Errorf("%s: %w", enumName(trustVerification, trustVerificationNames), errNotSupported))
	case maxDepth.set:
		return validationContext{}, notSupported("max_verify_depth")
	}
	if err := refuseTrue(requireSCT, "require_signed_certificate_timestamp"); err != nil {
		return validationContext{}, err
	}
	for i, sb := range sans {
		m, err := decodeSANMatcher(sb)
		if err != nil {
			return validationContext{}, atIndex("match_typed_subject_alt_names", i, err)
		}
		v.sans = append(v.sans, m)
	}
	return v, nil
}

var trustVerificationNames = []string{"VERIFY_TRUST_CHAIN", "ACCEPT_UNTRUSTED"}

// sanTypes are the values of the
// envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher.SanType
// enum, by number.
var sanTypes = []string{"SAN_TYPE_UNSPECIFIED", SANEmail, SANDNS, SANURI, SANIPAddress, "OTHER_NAME"}

// decodeSANMatcher decodes an
// envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher.
func decodeSANMatcher(b []byte) (SANMatcher, error) {
	var (
		sanType int32
		matcher msg
	)
	err := walk(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			sanType, err = f.int32()
			err = at("san_type", err)
		case 2:
			err = at("matcher", matcher.add(f))
		}
		// oid (3) only applies to OTHER_NAME.
		return err
	})
	if err != nil {
		return SANMatcher{}, err
	}
	var m SANMatcher
	switch sanType {
	case 0:
		return SANMatcher{}, at("san_type", errMissing)
	case 1, 2, 3, 4:
		m.Type = sanTypes[sanType]
	default:
		return SANMatcher{}, at("san_type", fmt.Errorf("%s: %w", enumName(sanType, sanTypes), errNotSupported))
	}
	if !matcher.set {
		return SANMatcher{}, at("matcher", errMissing)
	}
	if m.Match, err = decodeStringMatcher(matcher.b); err != nil {
		return SANMatcher{}, at("matcher", err)
	}
	return m, nil
}
