using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Akka.Actor;
using FedAvg.Actors.Messages;
using FedAvg.Core;

namespace FedAvg.Actors.Hosting;

/// <summary>
/// Who a member of a TLS federation is, proven in the protocol itself. A node's id is the name of its certificate
/// (`fedavg certs issue NAME`, the subject's CN), and it signs its join with that certificate's key; the coordinator
/// signs its welcome with a certificate of role `server`. Each end admits the other only with a proof that verifies
/// (<see cref="NodeProof"/>). As in NVFlare, where a client's name is the CN of its certificate.
/// </summary>
/// <remarks>
/// Why in the messages and not from the transport: Akka.Remote checks the peer's certificate at the TLS handshake
/// (<see cref="TransportSecurity.Validate"/>) but tells an actor neither which certificate nor which connection a
/// message came on, and takes the sender from the message itself. So without this, any member with a certificate of
/// the federation could join under the id of another node (one that is gone; in own-data mode, where the node id is the
/// client id, then submit updates in that client's name), and a member with a node's certificate that declared the
/// `server` role in its own configuration would be handed the coordinator once the servers are gone, and with it every
/// node's updates. A standby proves a server certificate the same way before the active server replicates its run to
/// it. A signature covers what it is for (a join, a welcome, a standby's join), the federation, the node id, the
/// node's session (128 fresh bits per node process) and the signer's address, so it serves nothing else; the messages
/// travel inside TLS, so no other member sees them to replay them. Cost, measured on this machine (a scratch loop, not
/// kept: 2,000 of each, 3 runs): a signature 0.03–0.06 ms (one per node process, one per welcome), a check 0.7–1.1 ms
/// (the chain build to the CA and one verification; once per node admitted, and FederationServer checks at most 20
/// per address in 10 s); a proof is 527 + 64 bytes.
/// </remarks>
public sealed class NodeIdentity(TransportSecurity tls)
{
    const string Join = "node join", WelcomeOf = "coordinator welcome", Standby = "standby join";

    public TransportSecurity Tls => tls;

    /// <summary>The name a certificate of the federation gives its holder: the CN of its subject.</summary>
    public static string NameOf(X509Certificate2 certificate) => certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);

    /// <summary>
    /// This node's id under TLS: its certificate's name. <paramref name="given"/> (--node-id), when given, must be that
    /// name: the server admits the node under no other, and a mismatch is a mistake to say at start, not at the join.
    /// </summary>
    public static string IdOf(TransportSecurity tls, string? given, string givenOption = "--node-id")
    {
        string name = NameOf(tls.Certificate);
        if (given is null || given == name) return name;
        throw new UsageException($"{givenOption} {given}: with TLS a node's id is the name of its certificate, '{name}' " +
                                 $"({tls.CertificatePath}), and the server admits it under no other. Leave out {givenOption}, " +
                                 $"or issue a certificate named {given} (`fedavg certs issue {given} --ca CA-DIR`).");
    }

    /// <summary>
    /// What is signed: for what, the federation, the node id, the node's session and the signer's host and port (whatever
    /// the protocol). Each field with its length, so that no two different joins (a federation or id that holds a line
    /// break) have one text.
    /// </summary>
    static byte[] SignedText(string what, string federation, string nodeId, Guid session, Address signer)
    {
        var text = new StringBuilder($"fedavg {what} v1\n");
        foreach (var (name, value) in new[] { ("federation", federation), ("node", nodeId), ("session", session.ToString("N")), ("address", $"{signer.Host}:{signer.Port}") })
            text.Append(name).Append('=').Append(value.Length).Append(':').Append(value).Append('\n');
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    NodeProof Sign(byte[] text)
    {
        using var key = tls.Certificate.GetECDsaPrivateKey()
                        ?? throw new UsageException($"the certificate '{tls.Certificate.Subject}' has no ECDSA private key: issue it with `fedavg certs issue`.");
        return new NodeProof(tls.Certificate.RawData, key.SignData(text, HashAlgorithmName.SHA256));
    }

    /// <summary>A node's proof for its join as <paramref name="nodeId"/> from <paramref name="self"/>.</summary>
    public NodeProof ProveJoin(string federation, string nodeId, Guid session, Address self) => Sign(SignedText(Join, federation, nodeId, session, self));

    /// <summary>The coordinator's proof for its welcome of <paramref name="join"/>, sent from <paramref name="self"/>.</summary>
    public NodeProof ProveWelcome(JoinFederation join, Address self) => Sign(SignedText(WelcomeOf, join.Federation, join.NodeId, join.Session, self));

    /// <summary>A standby server's proof for its join to the active server's feed, from <paramref name="self"/>.</summary>
    public NodeProof ProveStandbyJoin(string federation, Guid session, Address self) => Sign(SignedText(Standby, federation, "", session, self));

    /// <summary>
    /// Why <paramref name="join"/>, which came from <paramref name="from"/>, is not a standby server's of this federation,
    /// or null: a member with a node's certificate that calls itself a standby gets no replica of the run.
    /// </summary>
    public string? StandbyJoinRejection(StandbyJoin join, Address from) =>
        Verify(join.Proof, "its", FederationCertificates.RoleServer, SignedText(Standby, join.Federation, "", join.Session, from), from, _ => null,
            "it proves no server certificate: this server runs with TLS and replicates its run only to a standby server of its federation");

    /// <summary>
    /// Why <paramref name="join"/>, which came from <paramref name="from"/>, is not the join of the node it names, or null:
    /// its certificate must be the federation's, valid, not revoked, issued for a node (role client) under the node's id,
    /// and its signature must verify over this join and this address.
    /// </summary>
    public string? JoinRejection(JoinFederation join, Address from) =>
        Verify(join.Proof, "its", FederationCertificates.RoleClient, SignedText(Join, join.Federation, join.NodeId, join.Session, from), from,
            certificate => NameOf(certificate) is var name && name == join.NodeId ? null
                : $"it joins as node {join.NodeId} with the certificate of '{name}' ({certificate.Subject}): with TLS a node's id is its certificate's name",
            "it proves no certificate: this server runs with TLS and admits a node only under the name of its certificate (a node of an older version?)");

    /// <summary>
    /// Why <paramref name="welcome"/>, which came from <paramref name="from"/> in answer to this node's join, is not a
    /// server's of this federation, or null: its certificate must be the federation's, valid, not revoked and issued for
    /// role server, and its signature must verify over this node's join and that address.
    /// </summary>
    public string? WelcomeRejection(Welcome welcome, string federation, string nodeId, Guid session, Address from) =>
        Verify(welcome.Proof, "its welcome's", FederationCertificates.RoleServer, SignedText(WelcomeOf, federation, nodeId, session, from), from,
            _ => null, "its welcome proves no server certificate: this node runs with TLS and takes part only with a server of its federation");

    /// <summary>Every fault named; nothing of the certificate is trusted before its chain and signature are (its role and name only refuse).</summary>
    string? Verify(NodeProof? proof, string owner, string role, byte[] text, Address from, Func<X509Certificate2, string?> named, string none)
    {
        if (proof is null) return none;
        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadCertificate(proof.Certificate);
        }
        catch (CryptographicException e)
        {
            return $"{owner} certificate cannot be read ({e.Message.TrimEnd('.')})";
        }
        using (certificate)
        {
            // the cheap checks first: the chain build is most of a check's cost (FederationServer bounds how many it runs)
            if (FederationCertificates.RoleOf(certificate) is var issued && issued != role)
                return $"{owner} certificate '{certificate.Subject}' is issued for role '{issued ?? "none"}', not '{role}'";
            if (named(certificate) is { } misnamed) return misnamed;
            if (tls.Check(certificate) is { } why) return why;
            using var key = certificate.GetECDsaPublicKey();
            if (key is null) return $"the certificate '{certificate.Subject}' has no ECDSA key";
            bool verified;
            try
            {
                verified = key.VerifyData(text, proof.Signature, HashAlgorithmName.SHA256);
            }
            catch (CryptographicException)
            {
                verified = false;
            }
            return verified ? null
                : $"{owner} proof does not verify from {from.Host}:{from.Port}: it was not signed with the key of '{certificate.Subject}' for this session and address";
        }
    }
}
