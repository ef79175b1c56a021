import { createHash } from 'node:crypto';
import type { ParsedCertificate } from '../../x509/certificate';
import type { AgentContext } from '../../x509/agent-context';
import { describeKey } from '../../x509/keys';

/** Human-readable description of a certificate and its agent context, for `svid inspect` and `svid verify`. */
export function describeSvidText(
  cert: ParsedCertificate,
  context: AgentContext | undefined,
  now: Date,
): string {
  const lines: string[] = [];
  const id = cert.uriSans[0] ?? '(no URI SAN)';
  lines.push(`SPIFFE ID:   ${id}`);
  if (cert.dnsSans.length > 0) lines.push(`DNS names:   ${cert.dnsSans.join(', ')}`);
  lines.push(`Serial:      ${cert.serialHex}`);
  lines.push(`Not before:  ${isoSeconds(cert.notBefore)}`);
  lines.push(`Not after:   ${isoSeconds(cert.notAfter)} (${relative(cert.notAfter, now)})`);
  lines.push(`Key:         ${keyText(cert)}`);
  lines.push(`SHA-256:     ${cert.sha256Hex}`);
  if (context === undefined) {
    lines.push('Agent context: none');
    return lines.join('\n') + '\n';
  }
  lines.push('Agent context:');
  lines.push(`  Agent:       ${context.agentId}`);
  lines.push(
    `  Session:     ${context.sessionId}${context.rootSessionId !== context.sessionId ? ` (root session ${context.rootSessionId})` : ''}`,
  );
  lines.push(
    `  Principal:   ${context.principal.id} (issuer ${context.principal.issuer}, ${context.principal.provenance})`,
  );
  lines.push(`  Intent:      ${context.intent === '' ? '(none)' : JSON.stringify(context.intent)}`);
  lines.push(`  Scopes:      ${context.scopes.length === 0 ? '(none)' : context.scopes.join(' ')}`);
  lines.push(`  Policy:      ${context.policyVersion}`);
  const p = context.provenance;
  lines.push(`  Provenance:  ${p.method} by ${p.issuer} at ${isoSeconds(p.issuedAt)}`);
  lines.push(`               evidence sha256 ${Buffer.from(p.evidenceSha256).toString('hex')}`);
  if (context.delegation.length === 0) {
    lines.push('  Delegation:  none (this is a root session)');
  } else {
    // A tree from the principal down: each hop one level under the hop that signed its grant.
    const n = context.delegation.length;
    lines.push(`  Delegation tree (${n} hop${n > 1 ? 's' : ''} before this certificate):`);
    lines.push(`    ${context.principal.id} (principal, ${context.principal.provenance})`);
    context.delegation.forEach((link, i) => {
      const pad = '    ' + '   '.repeat(i);
      lines.push(`${pad}└─ ${link.spiffeId}  agent ${link.agentId}  session ${link.sessionId}`);
      lines.push(
        `${pad}   scopes ${link.scopes.join(' ') || '(none)'}; valid until ${isoSeconds(link.notAfter)}`,
      );
      lines.push(`${pad}   cert sha256 ${Buffer.from(link.certSha256).toString('hex')}`);
      lines.push(
        `${pad}   -> delegated to ${link.binding.childId} with scopes ${link.binding.scopes.join(' ') || '(none)'} until ${isoSeconds(link.binding.notAfter)}`,
      );
      // The key this hop's signature bound for the next one: the next link's key, or this certificate's.
      lines.push(
        `${pad}      for the key sha256 ${Buffer.from(link.binding.childKeySha256).toString('hex')}`,
      );
    });
    const pad = '    ' + '   '.repeat(n);
    lines.push(`${pad}└─ ${id}  agent ${context.agentId}  session ${context.sessionId} (this certificate)`);
    lines.push(`${pad}   key sha256 ${createHash('sha256').update(cert.spkiDer).digest('hex')}`);
  }
  return lines.join('\n') + '\n';
}

function keyText(cert: ParsedCertificate): string {
  try {
    const d = describeKey(cert.publicKey);
    if (d.kind === 'ec') return `EC ${d.curve}`;
    if (d.kind === 'rsa') return `RSA ${d.bits}`;
    return 'Ed25519';
  } catch {
    return `${cert.publicKey.asymmetricKeyType ?? 'unknown'} (not accepted by Lanyard)`;
  }
}

export function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function relative(when: Date, now: Date): string {
  const s = Math.round((when.getTime() - now.getTime()) / 1000);
  const abs = Math.abs(s);
  const text =
    abs >= 86400
      ? `${Math.floor(abs / 86400)}d`
      : abs >= 3600
        ? `${Math.floor(abs / 3600)}h`
        : abs >= 60
          ? `${Math.floor(abs / 60)}m`
          : `${abs}s`;
  return s >= 0 ? `expires in ${text}` : `expired ${text} ago`;
}
