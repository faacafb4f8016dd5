using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using FedAvg.Core;
using FedAvg.Core.Runtime;

namespace FedAvg.Actors.Hosting;

/// <summary>
/// The federation's own certificate authority (`fedavg certs init`) and the node certificates it signs
/// (`fedavg certs issue`), made with System.Security.Cryptography alone. Keys are ECDSA P-256. A CA directory holds
/// ca.crt (PEM, public: every node gets a copy) and ca.key (PEM PKCS#8, owner-only, encrypted when a password is
/// given); a node's bundle holds NAME.pfx (PKCS#12: its certificate and private key, owner-only), NAME.crt (PEM)
/// and a copy of ca.crt.
/// </summary>
public static class FederationCertificates
{
    public const string CaCertificateFile = "ca.crt";
    /// <summary>Serial numbers the CA no longer vouches for, one per line (hex, '#' starts a comment); read beside ca.crt.</summary>
    public const string RevokedFile = "revoked.txt";
    public const string CaKeyFile = "ca.key";
    public const string RoleServer = "server";
    public const string RoleClient = "client";
    /// <summary>Organization of every subject this CA signs; the role is the OU.</summary>
    const string Organization = "fedavg federation";
    /// <summary>The longest validity `--days` may ask for (100 years): past it is a typo, and DateTime ends at year 9999.</summary>
    public const int MaxDays = 36_500;
    static readonly PbeParameters KeyEncryption = new(PbeEncryptionAlgorithm.Aes256Cbc, HashAlgorithmName.SHA256, 200_000);

    /// <summary>Makes a CA in <paramref name="outDir"/>; refuses to replace an existing one unless <paramref name="force"/>.</summary>
    public static X509Certificate2 Init(string outDir, string name, string? password, int days, bool force = false, string outOption = "--out")
    {
        CheckDays(days, "a CA");
        if (string.IsNullOrWhiteSpace(name)) throw new UsageException($"--name '{name}': the federation needs a name (the CA's subject is CN=NAME CA).");
        if (File.Exists(outDir)) throw new UsageException($"{outOption} {outDir} is a file; give a directory for the CA.");
        string keyPath = Path.Combine(outDir, CaKeyFile);
        if (!force && (File.Exists(keyPath) || File.Exists(Path.Combine(outDir, CaCertificateFile))))
            throw new UsageException($"{outOption} {outDir} already holds a CA ({CaKeyFile}); every certificate it signed depends on it. Pass --force to replace it.");
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(Subject(name + " CA", "ca"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        var ca = request.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(days));
        string pem = string.IsNullOrEmpty(password) ? key.ExportPkcs8PrivateKeyPem() : key.ExportEncryptedPkcs8PrivateKeyPem(password, KeyEncryption);
        // together: a new ca.key beside the old ca.crt (or the reverse) would be a CA that can sign nothing, and the old
        // key, which every certificate issued so far depends on, would be gone
        WriteFiles(outOption, outDir,
            (keyPath, Ascii(pem), true), (Path.Combine(outDir, CaCertificateFile), Ascii(ca.ExportCertificatePem() + "\n"), false));
        return X509CertificateLoader.LoadCertificate(ca.RawData);
    }

    /// <summary>Signs a certificate for node <paramref name="name"/> with the CA in <paramref name="caDir"/> and writes its bundle to <paramref name="outDir"/>.</summary>
    /// <returns>The path of NAME.pfx.</returns>
    public static string Issue(string name, string caDir, string outDir, string role, string? caPassword, string? pfxPassword,
        IReadOnlyList<string> hosts, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        if (string.IsNullOrWhiteSpace(name) || name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || name.Contains(',') || name.Contains('='))
            throw new UsageException($"certificate name '{name}': use letters, digits, '-', '_' or '.' (it names the files NAME.pfx and NAME.crt).");
        // NAME.crt would be the bundle's ca.crt, and with --out the CA directory it would replace the CA's own certificate
        if (name + ".crt" is var crt && crt.Equals(CaCertificateFile, StringComparison.OrdinalIgnoreCase))
            throw new UsageException($"certificate name '{name}': {crt} is the name of the CA's certificate in every bundle; choose another name.");
        if (role is not (RoleServer or RoleClient)) throw new UsageException($"--role {role}: expected {RoleServer} or {RoleClient}.");
        if (notAfter <= notBefore) throw new UsageException("--days: the certificate must be valid for at least 1 day.");
        using var ca = LoadAuthority(caDir, caPassword);
        if (File.Exists(outDir)) throw new UsageException($"--out {outDir} is a file; give a directory for the node's certificate.");
        // a certificate cannot be valid outside its issuer's validity
        if (notAfter > ca.NotAfter) notAfter = ca.NotAfter;
        if (notBefore < ca.NotBefore) notBefore = ca.NotBefore;
        if (notAfter <= notBefore) throw new UsageException($"--ca {caDir}: the CA is valid only until {ca.NotAfter:yyyy-MM-dd HH:mm}; make a new one.");

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(Subject(name, role), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        // Akka.Remote's connections go both ways (a node dials the server, the server dials nodes back), so every
        // node is a TLS server and a TLS client: both usages, whatever its federation role.
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1", "serverAuth"), new Oid("1.3.6.1.5.5.7.3.2", "clientAuth")], false));
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(name);
        foreach (var host in hosts)
        {
            if (System.Net.IPAddress.TryParse(host, out var ip)) san.AddIpAddress(ip);
            else if (Uri.CheckHostName(host) == UriHostNameType.Dns) san.AddDnsName(host);
            else throw new UsageException($"--host '{host}' is not a host name or IP address.");
        }
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        byte[] serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F; // a positive serial number
        using var signed = request.Create(ca, notBefore, notAfter, serial);
        using var withKey = signed.CopyWithPrivateKey(key);

        string pfx = Path.Combine(outDir, name + ".pfx");
        var files = new List<(string, byte[], bool)>
        {
            (pfx, withKey.ExportPkcs12(Pkcs12ExportPbeParameters.Pbes2Aes256Sha256, pfxPassword), true),
            (Path.Combine(outDir, name + ".crt"), Ascii(signed.ExportCertificatePem() + "\n"), false),
        };
        string caCopy = Path.Combine(outDir, CaCertificateFile);
        if (Path.GetFullPath(caCopy) != Path.GetFullPath(Path.Combine(caDir, CaCertificateFile)))
            files.Add((caCopy, Ascii(ca.ExportCertificatePem() + "\n"), false));
        // together, so that a bundle is never half old and half new
        WriteFiles("--out", outDir, [.. files]);
        return pfx;
    }

    /// <summary>
    /// Revokes the certificate in <paramref name="certPath"/> (NAME.crt of `fedavg certs issue`): its serial goes into
    /// <paramref name="caDir"/>/revoked.txt, written atomically; revoking it again changes nothing. A peer presenting it is
    /// refused by every node whose ca.crt has that revoked.txt beside it, from that node's next start.
    /// </summary>
    /// <returns>The serial, the subject, and whether it was revoked now (false: it was already).</returns>
    public static (string Serial, string Subject, bool Added) Revoke(string certPath, string caDir)
    {
        if (!Directory.Exists(caDir)) throw new UsageException($"--ca {caDir}: no such directory (the CA directory of `fedavg certs init`).");
        if (!File.Exists(Path.Combine(caDir, CaCertificateFile)))
            throw new UsageException($"--ca {caDir} is not a federation CA directory: {CaCertificateFile} is missing (made by `fedavg certs init`).");
        using var ca = TransportSecurity.LoadCaCertificate(Path.Combine(caDir, CaCertificateFile), "--ca");
        if (certPath.EndsWith(".pfx", StringComparison.OrdinalIgnoreCase))
            throw new UsageException($"CERT {certPath}: give the node's NAME.crt (public), not its NAME.pfx.");
        using (var cert = TransportSecurity.LoadCertificateFile(certPath, $"CERT {certPath}"))
        {
            if (!TransportSecurity.ChainsTo(cert, ca))
                throw new UsageException($"CERT {certPath}: '{cert.Subject}' was not issued by the CA in {caDir} ({ca.Subject}).");
            // a CA's serial on its own list would shut out no node (their serials are checked, not their issuer's); to
            // withdraw the CA, make a new one and reissue
            if (cert.Extensions.OfType<X509BasicConstraintsExtension>().Any(b => b.CertificateAuthority))
                throw new UsageException($"CERT {certPath}: '{cert.Subject}' is the CA certificate, not a node's; to replace the CA, " +
                                         $"make a new one (`fedavg certs init --out DIR`) and issue every node's certificate from it.");
            string path = Path.Combine(caDir, RevokedFile);
            try
            {
                int added = AddRevoked(path, [(cert.SerialNumber, $"{cert.Subject}, revoked {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC")]);
                return (cert.SerialNumber, cert.Subject, added == 1);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                string why = Directory.Exists(path) ? $"{path} is a directory" : e.Message.TrimEnd('.');
                throw new UsageException($"--ca {caDir}: cannot write {RevokedFile} ({why}); nothing was revoked.");
            }
        }
    }

    static readonly object revokedWrites = new();

    /// <summary>
    /// Adds the serials of <paramref name="entries"/> that <paramref name="path"/> (a revoked.txt) does not list yet, each
    /// on a line of its own with its note as a comment, and writes the file atomically: a reader sees the old list or
    /// the new one. Returns how many were added (0: the file is left as it was). Writers in this process take turns, so
    /// none loses another's lines. A malformed list is a <see cref="UsageException"/> naming its line, and is not touched.
    /// </summary>
    public static int AddRevoked(string path, IEnumerable<(string Serial, string Note)> entries)
    {
        lock (revokedWrites)
        {
            var revoked = ReadRevoked(path);
            var fresh = entries.Select(e => (Serial: e.Serial.ToUpperInvariant(), e.Note)).Where(e => !revoked.Contains(e.Serial))
                .DistinctBy(e => e.Serial).ToList();
            if (fresh.Count == 0) return 0;
            string text = (File.Exists(path) ? File.ReadAllText(path) : "# serial numbers revoked by this federation's CA (fedavg certs revoke)\n")
                          + string.Concat(fresh.Select(e => $"{e.Serial} # {e.Note}\n"));
            AtomicFile.WriteAllText(path, text);
            return fresh.Count;
        }
    }

    /// <summary>Whether <paramref name="text"/> is a certificate serial number as revoked.txt holds them: 1 to 64 hex digits.</summary>
    public static bool IsSerial(string text) => text.Length is > 0 and <= 64 && text.All(Uri.IsHexDigit);

    /// <summary>The serials of a revoked.txt (none if it does not exist); a line that is not one is an error naming file and line.</summary>
    public static IReadOnlySet<string> ReadRevoked(string path)
    {
        var serials = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        // a directory there was read as no list at all: every revocation lifted without a word
        if (Directory.Exists(path)) throw new UsageException($"{path} is a directory; the revoked list is a file of serial numbers (`fedavg certs revoke` writes it).");
        if (!File.Exists(path)) return serials;
        int number = 0;
        foreach (var raw in File.ReadLines(path))
        {
            number++;
            string line = (raw.IndexOf('#') is var hash and >= 0 ? raw[..hash] : raw).Trim();
            if (line.Length == 0) continue;
            if (!IsSerial(line))
                throw new UsageException($"{path}, line {number}: '{line}' is not a certificate serial number (hex digits, as `fedavg certs revoke` writes).");
            serials.Add(line.ToUpperInvariant());
        }
        return serials;
    }

    /// <summary>The CA of <paramref name="caDir"/> with its private key; errors name the directory and what is wrong.</summary>
    public static X509Certificate2 LoadAuthority(string caDir, string? password)
    {
        if (!Directory.Exists(caDir)) throw new UsageException($"--ca {caDir}: no such directory (make one with `fedavg certs init --out {caDir}`).");
        string certPath = Path.Combine(caDir, CaCertificateFile), keyPath = Path.Combine(caDir, CaKeyFile);
        foreach (var file in new[] { certPath, keyPath })
            if (!File.Exists(file))
                throw new UsageException($"--ca {caDir} is not a federation CA directory: {Path.GetFileName(file)} is missing " +
                                         $"(a CA directory holds {CaCertificateFile} and {CaKeyFile}, made by `fedavg certs init`).");
        var cert = TransportSecurity.LoadCaCertificate(certPath, "--ca");
        string pem = File.ReadAllText(keyPath);
        using var key = ECDsa.Create();
        try
        {
            if (pem.Contains("ENCRYPTED PRIVATE KEY", StringComparison.Ordinal))
            {
                if (string.IsNullOrEmpty(password))
                    throw new UsageException($"--ca {caDir}: {CaKeyFile} is encrypted; give its password in ${TransportSecurity.CaPasswordVariable} or --ca-password-file FILE.");
                key.ImportFromEncryptedPem(pem, password);
            }
            else
            {
                key.ImportFromPem(pem);
            }
        }
        catch (CryptographicException)
        {
            throw new UsageException($"--ca {caDir}: {CaKeyFile} cannot be read: wrong password, or not an ECDSA private key in PEM.");
        }
        catch (ArgumentException)
        {
            throw new UsageException($"--ca {caDir}: {CaKeyFile} holds no PEM private key.");
        }
        using var pub = cert.GetECDsaPublicKey();
        if (pub is null || !pub.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(key.ExportSubjectPublicKeyInfo()))
            throw new UsageException($"--ca {caDir}: {CaKeyFile} is not the key of {CaCertificateFile}.");
        using (cert)
            return cert.CopyWithPrivateKey(key);
    }

    static X500DistinguishedName Subject(string commonName, string role)
    {
        var b = new X500DistinguishedNameBuilder();
        b.AddCommonName(commonName);
        b.AddOrganizationalUnitName(role);
        b.AddOrganizationName(Organization);
        return b.Build();
    }

    /// <summary>The role a certificate was issued for (its OU), or null.</summary>
    public static string? RoleOf(X509Certificate2 cert)
    {
        foreach (var rdn in cert.SubjectName.EnumerateRelativeDistinguishedNames())
            if (rdn.GetSingleElementType().Value == "2.5.4.11") return rdn.GetSingleElementValue();
        return null;
    }

    /// <summary>A certificate's validity in days, from 1 to <see cref="MaxDays"/>; checked before anything is made.</summary>
    public static void CheckDays(int days, string what)
    {
        if (days < 1) throw new UsageException($"--days {days}: {what} must be valid for at least 1 day.");
        if (days > MaxDays) throw new UsageException($"--days {days}: {what} may be valid for at most {MaxDays} days (100 years).");
    }

    static byte[] Ascii(string text) => System.Text.Encoding.ASCII.GetBytes(text);

    /// <summary>
    /// Writes <paramref name="files"/> into <paramref name="dir"/> with <see cref="AtomicFile.WriteTogether"/> (a secret
    /// one owner-only, 0600, from its first byte); a failure is an error naming the directory and the reason, after
    /// which the old files are as they were and a directory made here is removed again.
    /// </summary>
    static void WriteFiles(string option, string dir, params (string Path, byte[] Content, bool OwnerOnly)[] files)
    {
        bool made = !Directory.Exists(dir);
        try
        {
            Directory.CreateDirectory(dir);
            AtomicFile.WriteTogether(files);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (made)
                try { Directory.Delete(dir); } catch (Exception d) when (d is IOException or UnauthorizedAccessException) { }
            // a directory in a file's place makes the rename fail with "already exists", which hides the reason
            string why = files.FirstOrDefault(f => Directory.Exists(f.Path)).Path is { } taken ? $"{taken} is a directory" : e.Message.TrimEnd('.');
            throw new UsageException($"{option} {dir}: cannot write {string.Join(", ", files.Select(f => Path.GetFileName(f.Path)))} ({why}); nothing in it was changed.");
        }
    }
}
