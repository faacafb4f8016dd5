using FedAvg.Actors.Hosting;
using FedAvg.Core;
using Xunit;

namespace FedAvg.Actors.Tests;

/// <summary>`fedavg certs revoke` and the revoked.txt every node reads beside its ca.crt, with real certificates.</summary>
public sealed class RevocationTests : IDisposable
{
    readonly TestCertificates certs = new();
    string ca => certs.Ca;

    string Issue(string name, string role = FederationCertificates.RoleClient, bool otherCa = false) => certs.Issue(name, role, otherCa);

    /// <summary>What `fedavg server --tls-cert BUNDLE/NAME.pfx --tls-ca BUNDLE/ca.crt` loads, after revoked.txt was copied into the bundle.</summary>
    TransportSecurity Load(string pfx, string role = ClusterHosting.ServerRole)
    {
        string list = Path.Combine(ca, FederationCertificates.RevokedFile);
        if (File.Exists(list)) File.Copy(list, Path.Combine(Path.GetDirectoryName(pfx)!, FederationCertificates.RevokedFile), overwrite: true);
        return TestCertificates.Load(pfx, role);
    }

    static System.Security.Cryptography.X509Certificates.X509Certificate2 Crt(string pfx) => TestCertificates.Crt(pfx);

    [Fact]
    public void A_revoked_certificate_is_refused_by_name_and_serial_and_the_others_still_pass()
    {
        string server = Issue("server", FederationCertificates.RoleServer), good = Issue("node-a"), gone = Issue("node-b");
        var (serial, subject, added) = FederationCertificates.Revoke(Path.ChangeExtension(gone, ".crt"), ca);
        Assert.True(added);
        Assert.Contains("CN=node-b", subject);
        using var security = Load(server);
        using var goneCert = Crt(gone);
        using var goodCert = Crt(good);
        Assert.Equal(serial, goneCert.SerialNumber);
        string? why = security.Check(goneCert);
        Assert.NotNull(why);
        Assert.Contains($"'{goneCert.Subject}' (serial {serial}) is revoked", why);
        Assert.Contains(FederationCertificates.RevokedFile, why);
        Assert.Null(security.Check(goodCert));

        // again: nothing changes, the list keeps one line for it
        Assert.False(FederationCertificates.Revoke(Path.ChangeExtension(gone, ".crt"), ca).Added);
        Assert.Single(File.ReadAllLines(Path.Combine(ca, FederationCertificates.RevokedFile)), l => l.StartsWith(serial));
    }

    [Fact]
    public void A_node_whose_own_certificate_is_revoked_refuses_to_start()
    {
        string node = Issue("node-c");
        FederationCertificates.Revoke(Path.ChangeExtension(node, ".crt"), ca);
        var e = Assert.Throws<UsageException>(() => Load(node, ClusterHosting.ClientRole));
        Assert.Contains(node, e.Message); // names the certificate the node was given
        Assert.Contains("is revoked", e.Message);
    }

    [Fact]
    public void A_bad_revoked_list_a_certificate_of_another_ca_and_a_pfx_are_each_refused_by_name()
    {
        string server = Issue("server", FederationCertificates.RoleServer);
        File.WriteAllText(Path.Combine(ca, FederationCertificates.RevokedFile), "# ok\n0A1B2C\nnot-a-serial # oops\n");
        var e = Assert.Throws<UsageException>(() => Load(server));
        Assert.Contains($"{FederationCertificates.RevokedFile}, line 3: 'not-a-serial' is not a certificate serial number", e.Message);
        // a directory in its place is refused too: it was read as an empty list, lifting every revocation
        File.Delete(Path.Combine(ca, FederationCertificates.RevokedFile));
        string beside = Path.Combine(Path.GetDirectoryName(server)!, FederationCertificates.RevokedFile);
        File.Delete(beside);
        Directory.CreateDirectory(beside);
        e = Assert.Throws<UsageException>(() => Load(server));
        Assert.Contains($"{beside} is a directory", e.Message);
        Directory.Delete(beside);

        string stranger = Issue("stranger", otherCa: true);
        e = Assert.Throws<UsageException>(() => FederationCertificates.Revoke(Path.ChangeExtension(stranger, ".crt"), ca));
        Assert.Contains("was not issued by the CA in", e.Message);
        e = Assert.Throws<UsageException>(() => FederationCertificates.Revoke(server, ca));
        Assert.Contains("not its NAME.pfx", e.Message);
    }

    [Fact]
    public void The_ca_certificate_itself_is_refused_and_the_list_stays_unwritten()
    {
        // its serial on its own list would shut out no node: peers are checked by their own serials
        var e = Assert.Throws<UsageException>(() => FederationCertificates.Revoke(Path.Combine(ca, FederationCertificates.CaCertificateFile), ca));
        Assert.Contains("is the CA certificate, not a node's", e.Message);
        Assert.Contains("fedavg certs init", e.Message);
        Assert.False(File.Exists(Path.Combine(ca, FederationCertificates.RevokedFile)));
    }

    [Fact]
    public void A_revoked_list_that_cannot_be_written_is_an_error_naming_it_and_leaves_no_temp()
    {
        string node = Issue("node-f");
        string list = Path.Combine(ca, FederationCertificates.RevokedFile);
        Directory.CreateDirectory(list);
        var e = Assert.Throws<UsageException>(() => FederationCertificates.Revoke(Path.ChangeExtension(node, ".crt"), ca));
        Assert.Contains($"{list} is a directory", e.Message); // found when the list is read, before anything is written
        Assert.Equal(["ca.crt", "ca.key", FederationCertificates.RevokedFile], Directory.EnumerateFileSystemEntries(ca).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void A_revocation_copied_to_a_running_node_takes_effect_at_its_next_check_and_a_broken_copy_keeps_the_list_in_force()
    {
        string server = Issue("server", FederationCertificates.RoleServer), late = Issue("node-d"), later = Issue("node-e");
        using var security = Load(server); // no revoked.txt yet
        var changes = new List<string>();
        security.OnRevocationsChanged = changes.Add;
        using var lateCert = Crt(late);
        using var laterCert = Crt(later);
        Assert.Null(security.Check(lateCert));
        Assert.Empty(changes); // nothing changed, nothing read again

        // revoked while the server runs, and revoked.txt copied into its bundle as the README says
        FederationCertificates.Revoke(Path.ChangeExtension(late, ".crt"), ca);
        string bundled = Path.Combine(Path.GetDirectoryName(server)!, FederationCertificates.RevokedFile);
        File.Copy(Path.Combine(ca, FederationCertificates.RevokedFile), bundled, overwrite: true);
        Assert.Contains("is revoked", security.Check(lateCert));
        Assert.Null(security.Check(laterCert));
        Assert.Equal([$"{bundled} changed: 1 revoked certificate(s) now (1 added, 0 removed)"], changes);

        // a broken list (a copy cut short, a typo) is said once and does not lift the revocation in force
        File.AppendAllText(bundled, "not-a-serial\n");
        Assert.Contains("is revoked", security.Check(lateCert));
        Assert.Contains("is revoked", security.Check(lateCert));
        Assert.Equal(2, changes.Count);
        Assert.Contains("'not-a-serial' is not a certificate serial number", changes[1]);
        Assert.Contains("Kept the previous list (1 revoked certificate(s))", changes[1]);

        // mended, with the second node revoked as well
        FederationCertificates.Revoke(Path.ChangeExtension(later, ".crt"), ca);
        File.Copy(Path.Combine(ca, FederationCertificates.RevokedFile), bundled, overwrite: true);
        Assert.Contains("is revoked", security.Check(laterCert));
        Assert.Contains("is revoked", security.Check(lateCert));
        Assert.Equal($"{bundled} changed: 2 revoked certificate(s) now (1 added, 0 removed)", changes[^1]);
    }

    public void Dispose() => certs.Dispose();
}
