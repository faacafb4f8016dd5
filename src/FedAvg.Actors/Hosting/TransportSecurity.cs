using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Configuration;
using Akka.Event;
using Akka.Remote.Transport.DotNetty;
using FedAvg.Core;

namespace FedAvg.Actors.Hosting;

/// <summary>The `fedavg.cluster.tls` section: file names and switches only; a password never sits in HOCON.</summary>
/// <param name="Certificate">This node's PKCS#12 file (certificate and private key), from `fedavg certs issue` (--tls-cert).</param>
/// <param name="Ca">The federation's CA certificate (ca.crt), or a directory holding it (--tls-ca).</param>
/// <param name="PasswordFile">A file whose first line is the PKCS#12 password (--tls-password-file); else $FEDAVG_CERT_PASSWORD.</param>
/// <param name="Insecure">Plaintext off loopback, on purpose (--insecure).</param>
public sealed record TlsSettings(string Certificate, string Ca, string PasswordFile, bool Insecure)
{
    public static readonly string[] Keys = ["certificate", "ca", "password-file", "insecure"];
    public const string Section = "fedavg.cluster.tls";

    /// <summary>What the user wrote for each setting, so that an error names that and not something they never typed.</summary>
    public TlsNames Names { get; init; } = TlsNames.Hocon;

    public bool Enabled => Certificate.Length > 0 || Ca.Length > 0;

    /// <summary>
    /// The section of the layered HOCON. <paramref name="given"/> maps the keys (certificate, ca, password-file,
    /// insecure) whose value came from a flag or an environment variable to that flag or variable; any other key is named
    /// by its HOCON path. A key set nowhere is named the way the certificate or CA was given (a HOCON user is told of
    /// HOCON keys, a command-line user of flags).
    /// </summary>
    public static TlsSettings FromConfig(Config config, IReadOnlyDictionary<string, string>? given = null)
    {
        given ??= new Dictionary<string, string>();
        var c = config.GetConfig(Section);
        if (c is null || c.IsEmpty) return new TlsSettings("", "", "", false) { Names = TlsNames.Flags.With(given) };
        foreach (var key in c.AsEnumerable().Select(kv => kv.Key))
            if (!Keys.Contains(key)) throw new UsageException($"{Section}.{key} is not a setting. Valid settings: {string.Join(", ", Keys)}.");
        T Read<T>(string key, Func<string, T> read, T unset)
        {
            if (!c.HasPath(key)) return unset;
            try
            {
                return read(key);
            }
            // Akka's GetBoolean throws NotSupportedException for a word it does not know ("insecure = maybe")
            catch (Exception e) when (e is FormatException or ConfigurationException or InvalidCastException or ArgumentException or NotSupportedException)
            {
                string name = given.TryGetValue(key, out var g) ? g : $"{Section}.{key}";
                throw new UsageException($"{name}: '{c.GetValue(key)}' is not a valid value ({e.Message.TrimEnd('.')}).");
            }
        }
        var settings = new TlsSettings(Read("certificate", k => c.GetString(k) ?? "", ""), Read("ca", k => c.GetString(k) ?? "", ""),
            Read("password-file", k => c.GetString(k) ?? "", ""), Read("insecure", k => c.GetBoolean(k), false));
        // a key set in HOCON is named by its path; one set nowhere, in the style of the files that were given
        bool fromHocon = (settings.Certificate.Length > 0 && !given.ContainsKey("certificate")) || (settings.Ca.Length > 0 && !given.ContainsKey("ca"));
        var hocon = new Dictionary<string, string>();
        foreach (var (key, set) in new[] { ("certificate", settings.Certificate.Length > 0), ("ca", settings.Ca.Length > 0),
                     ("password-file", settings.PasswordFile.Length > 0), ("insecure", settings.Insecure) })
            if (set && !given.ContainsKey(key)) hocon[key] = $"{Section}.{key}";
        return settings with { Names = (fromHocon ? TlsNames.Hocon : TlsNames.Flags).With(hocon).With(given) };
    }
}

/// <summary>How the user named each TLS setting: a flag (--tls-cert), a HOCON path (fedavg.cluster.tls.certificate) or an environment variable.</summary>
public sealed record TlsNames(string Certificate, string Ca, string PasswordFile, string Insecure)
{
    public static readonly TlsNames Flags = new("--tls-cert", "--tls-ca", "--tls-password-file", "--insecure");
    public static readonly TlsNames Hocon = new($"{TlsSettings.Section}.certificate", $"{TlsSettings.Section}.ca",
        $"{TlsSettings.Section}.password-file", $"{TlsSettings.Section}.insecure");

    /// <summary>These names, with those of <paramref name="names"/> (HOCON key → name) in their place.</summary>
    public TlsNames With(IReadOnlyDictionary<string, string> names) => new(
        names.GetValueOrDefault("certificate", Certificate), names.GetValueOrDefault("ca", Ca),
        names.GetValueOrDefault("password-file", PasswordFile), names.GetValueOrDefault("insecure", Insecure));

    /// <summary>A setting and its value as the user wrote it: `--tls-cert FILE`, `fedavg.cluster.tls.certificate = "FILE"`, `$VAR=FILE`.</summary>
    public static string Show(string name, string value) =>
        name.StartsWith('-') ? $"{name} {value}" : name.StartsWith('$') ? $"{name}={value}" : $"{name} = \"{value}\"";
}

/// <summary>
/// Mutual TLS on Akka.Remote's DotNetty transport, checked against the federation's own CA rather than the machine's
/// trust store: this node's certificate and key, the CA, and the validator every handshake runs (both directions).
/// </summary>
/// <remarks>
/// Akka.Remote 1.5.73 takes a <see cref="DotNettySslSetup"/> with a custom <see cref="CertificateValidationCallback"/>
/// (require-mutual-authentication on), which replaces its own chain check on inbound and outbound handshakes. Ours
/// builds the peer's chain with <see cref="X509ChainTrustMode.CustomRootTrust"/> and the federation's CA as the only
/// root, so a certificate from any other CA (public ones included) is refused, and the machine's store is not read.
/// Host names are not checked: nodes are reached by address and the CA signs only the federation's own nodes.
/// </remarks>
public sealed class TransportSecurity : IDisposable
{
    public const string PasswordVariable = "FEDAVG_CERT_PASSWORD";
    public const string CaPasswordVariable = "FEDAVG_CA_PASSWORD";

    public X509Certificate2 Certificate { get; }
    public X509Certificate2 Ca { get; }
    public string CertificatePath { get; }
    /// <summary>How the user gave the CA (--tls-ca or fedavg.cluster.tls.ca), for errors after start that concern it.</summary>
    public string CaSetting { get; init; } = TlsNames.Flags.Ca;

    /// <summary>
    /// Serial numbers of certificates the federation revoked: the revoked.txt beside ca.crt (<see cref="RevokedPath"/>),
    /// read at start and again whenever the file changes (its time or size, looked at on each handshake and each weight
    /// channel request: one stat), so a revocation copied to a running node takes effect without a restart.
    /// </summary>
    public IReadOnlySet<string> Revoked
    {
        get
        {
            Reread();
            lock (revokedGate) return revoked;
        }
    }

    public string RevokedPath { get; private set; } = "";

    readonly object revokedGate = new();
    IReadOnlySet<string> revoked = new HashSet<string>();
    // serials another server of the federation revoked (a standby's feed, AddRevoked): in force whatever the file says
    readonly HashSet<string> replicated = new(StringComparer.OrdinalIgnoreCase);

    IReadOnlySet<string> WithReplicated(IReadOnlySet<string> serials) =>
        replicated.Count == 0 ? serials : new HashSet<string>(serials.Concat(replicated), StringComparer.OrdinalIgnoreCase);
    (DateTime Time, long Length) revokedStamp = (DateTime.MinValue, -1), unreadable = (DateTime.MinValue, -1);

    static (DateTime, long) StampOf(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? (info.LastWriteTimeUtc, info.Length) : (DateTime.MinValue, -1);
    }

    /// <summary>Reads <paramref name="path"/> now (a malformed list is a <see cref="UsageException"/>: at start, a mistake), and watches it after.</summary>
    public void ReadRevoked(string path)
    {
        var stamp = StampOf(path);
        var serials = FederationCertificates.ReadRevoked(path);
        lock (revokedGate) (RevokedPath, revoked, revokedStamp) = (path, WithReplicated(serials), stamp);
    }

    /// <summary>
    /// Revokes <paramref name="serials"/> in this process at once, whatever revoked.txt says, from now until it exits:
    /// the revocations another server of the federation holds (StandbyFeed sends them to its standbys). It adds only;
    /// nothing from the network lifts a revocation. Returns the serials that were not revoked here yet.
    /// </summary>
    public IReadOnlyList<string> AddRevoked(IEnumerable<string> serials)
    {
        Reread();
        lock (revokedGate)
        {
            var fresh = serials.Select(s => s.ToUpperInvariant()).Where(s => !revoked.Contains(s)).Distinct().ToList();
            if (fresh.Count == 0) return fresh;
            replicated.UnionWith(fresh);
            revoked = WithReplicated(revoked);
            return fresh;
        }
    }

    /// <summary>
    /// Revocations the active server holds, sent to this standby or node (<see cref="Messages.RevokedCertificates"/>): in
    /// force in this process at once (<see cref="AddRevoked"/>), then added to the revoked.txt beside ca.crt on a thread
    /// of their own (a disk write: never on an actor's), so that this process refuses the same members after a restart
    /// or a takeover. Null when none of them is new; else the line to log, once the file is written (or could not be).
    /// </summary>
    public Task<string>? Replicate(IReadOnlyList<string> serials, string from)
    {
        var fresh = AddRevoked(serials);
        if (fresh.Count == 0) return null;
        string path = RevokedPath, note = $"revoked by the server at {from}, replicated {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC";
        string done = $"revoked {fresh.Count} certificate(s) the server at {from} revoked ({string.Join(", ", fresh.Take(3))}{(fresh.Count > 3 ? ", …" : "")})";
        return Task.Factory.StartNew(() =>
                {
                    FederationCertificates.AddRevoked(path, fresh.Select(f => (f, note)));
                    return $"{done}; added to {path}";
                }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result
                : $"{done}, until this process stops: cannot add them to {path} ({t.Exception!.GetBaseException().Message})", TaskScheduler.Default);
    }

    void Reread()
    {
        if (RevokedPath.Length == 0) return;
        var stamp = StampOf(RevokedPath);
        lock (revokedGate)
        {
            if (stamp == revokedStamp || stamp == unreadable) return;
            try
            {
                var serials = FederationCertificates.ReadRevoked(RevokedPath);
                serials = WithReplicated(serials);
                int added = serials.Count(s => !revoked.Contains(s)), removed = revoked.Count(s => !serials.Contains(s));
                (revoked, revokedStamp) = (serials, stamp);
                OnRevocationsChanged?.Invoke($"{RevokedPath} changed: {serials.Count} revoked certificate(s) now ({added} added, {removed} removed)");
            }
            catch (Exception e) when (e is UsageException or IOException or UnauthorizedAccessException)
            {
                // a list being copied in, or a mistake: keep the one in force, say so once per version of the file
                unreadable = stamp;
                OnRevocationsChanged?.Invoke($"{e.Message} Kept the previous list ({revoked.Count} revoked certificate(s)).");
            }
        }
    }

    /// <summary>Called (on the thread that noticed) when revoked.txt was read again, or could not be.</summary>
    public Action<string>? OnRevocationsChanged { get; set; }

    /// <summary>Called (on a transport thread) for every peer refused, with who and why.</summary>
    public Action<string>? OnRefused { get; set; }

    public TransportSecurity(X509Certificate2 certificate, X509Certificate2 ca, string certificatePath = "")
    {
        Certificate = certificate;
        Ca = ca;
        CertificatePath = certificatePath;
    }

    /// <summary>
    /// This node's transport security, or null for plaintext. Plaintext is allowed only where nothing but this machine
    /// can connect (loopback), or with <see cref="TlsSettings.Insecure"/>. Every bad file is refused here, at start,
    /// naming it and the reason.
    /// </summary>
    public static TransportSecurity? Load(TlsSettings settings, Endpoint endpoint, string role)
    {
        var n = settings.Names;
        if (!settings.Enabled)
        {
            if (!settings.Insecure && !IsLoopback(endpoint.Bind))
                throw new UsageException($"--bind-hostname {endpoint.Bind} is not a loopback address: refusing to listen without TLS. " +
                                         "Give --tls-cert FILE and --tls-ca FILE (made by `fedavg certs init` and `fedavg certs issue`, see docs/security.md), " +
                                         "or --insecure to run plaintext TCP on a network you trust.");
            return null;
        }
        if (settings.Insecure)
            throw new UsageException($"{n.Insecure} turns TLS off; do not give " +
                                     string.Join(" or ", new[] { (settings.Certificate, n.Certificate), (settings.Ca, n.Ca) }.Where(g => g.Item1.Length > 0).Select(g => g.Item2)) +
                                     " with it.");
        if (settings.Certificate.Length == 0) throw new UsageException($"{n.Ca} needs {n.Certificate} as well: this node's NAME.pfx from `fedavg certs issue`.");
        if (settings.Ca.Length == 0) throw new UsageException($"{n.Certificate} needs {n.Ca} as well: the federation's ca.crt.");
        var (password, source) = Password(settings.PasswordFile, n.PasswordFile, PasswordVariable);
        string caFile = CaFile(settings.Ca, n.Ca);
        var ca = LoadCaCertificate(caFile, n.Ca);
        var certificate = LoadNodeCertificate(settings.Certificate, password, source, n.Certificate);
        string revoked = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(caFile))!, FederationCertificates.RevokedFile);
        var security = new TransportSecurity(certificate, ca, settings.Certificate) { CaSetting = n.Ca };
        security.ReadRevoked(revoked);
        string cert = TlsNames.Show(n.Certificate, settings.Certificate);
        if (security.Check(certificate) is { } why)
            throw new UsageException($"{cert}: {why} ({TlsNames.Show(n.Ca, settings.Ca)}: {ca.Subject}). Issue it with `fedavg certs issue NAME --ca CA-DIR`.");
        string expected = role == ClusterHosting.ServerRole ? FederationCertificates.RoleServer : FederationCertificates.RoleClient;
        if (FederationCertificates.RoleOf(certificate) is { } issued && issued != expected)
            throw new UsageException($"{cert}: issued for role '{issued}', but this is a {(role == ClusterHosting.ServerRole ? "fedavg server" : "fedavg node")}; " +
                                     $"issue one with --role {expected}.");
        return security;
    }

    /// <summary>
    /// A password from FILE (its first line) if given, else from the environment variable, else none. An empty one is
    /// refused: a file or variable given on purpose but left empty is a mistake (an unset variable in `echo $X > FILE`),
    /// and taken as "no password" it would write a CA key unencrypted or a .pfx unprotected while the user thinks
    /// otherwise. No password is said by giving neither.
    /// </summary>
    public static (string? Password, string Source) Password(string file, string option, string variable)
    {
        if (file.Length > 0)
        {
            string named = TlsNames.Show(option, file);
            if (!File.Exists(file)) throw new UsageException($"{named}: file not found.");
            try
            {
                string text = File.ReadAllText(file);
                int end = text.IndexOfAny(['\r', '\n']);
                string password = end >= 0 ? text[..end] : text;
                if (password.Length == 0)
                    throw new UsageException($"{named}: {(text.Length == 0 ? "the file is empty" : "its first line is empty")}; " +
                                             $"write the password on its first line, or give neither {option} nor ${variable} for no password.");
                return (password, named);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new UsageException($"{named}: cannot be read ({e.Message}).");
            }
        }
        string? env = Environment.GetEnvironmentVariable(variable);
        if (env is null) return (null, $"no password given (${variable} or {option})");
        if (env.Length == 0)
            throw new UsageException($"${variable} is set but empty; set it to the password, or unset it (and give no {option}) for no password.");
        return (env, $"${variable}");
    }

    static string CaFile(string path, string option)
    {
        if (!Directory.Exists(path)) return path;
        string file = Path.Combine(path, FederationCertificates.CaCertificateFile);
        if (!File.Exists(file))
            throw new UsageException($"{TlsNames.Show(option, path)} is a directory without {FederationCertificates.CaCertificateFile}: it is not a federation CA or certificate bundle.");
        return file;
    }

    /// <summary>A certificate file (PEM or DER, no key); errors start with <paramref name="named"/>, the setting that gave it.</summary>
    public static X509Certificate2 LoadCertificateFile(string path, string named)
    {
        if (!File.Exists(path)) throw new UsageException($"{named}: file not found.");
        try
        {
            return X509CertificateLoader.LoadCertificateFromFile(path);
        }
        catch (CryptographicException e)
        {
            throw new UsageException($"{named}: not a certificate in PEM or DER ({e.Message.TrimEnd('.')}).");
        }
    }

    /// <summary>A CA certificate (PEM or DER) that is a CA and in its validity period.</summary>
    public static X509Certificate2 LoadCaCertificate(string path, string option)
    {
        string named = TlsNames.Show(option, path);
        var ca = LoadCertificateFile(path, named);
        if (ca.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault() is not { CertificateAuthority: true })
            throw new UsageException($"{named}: '{ca.Subject}' is not a CA certificate (no CA basic constraint); give the ca.crt of `fedavg certs init`.");
        CheckValidity(ca, named);
        return ca;
    }

    /// <summary>A PKCS#12 file with a certificate and its private key, in its validity period; errors name <paramref name="option"/>.</summary>
    public static X509Certificate2 LoadNodeCertificate(string path, string? password, string passwordSource, string option = "--tls-cert")
    {
        string named = TlsNames.Show(option, path);
        if (!File.Exists(path)) throw new UsageException($"{named}: file not found.");
        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadPkcs12FromFile(path, password, X509KeyStorageFlags.EphemeralKeySet);
        }
        catch (CryptographicException e)
        {
            X509Certificate2? bare = null;
            try
            {
                bare = X509CertificateLoader.LoadCertificateFromFile(path);
            }
            catch (CryptographicException)
            {
            }
            if (bare is not null)
                throw new UsageException($"{named}: holds the certificate '{bare.Subject}' without its private key; give the NAME.pfx of `fedavg certs issue`.");
            if (e.Message.Contains("password", StringComparison.OrdinalIgnoreCase))
                throw new UsageException($"{named}: wrong password ({passwordSource}).");
            throw new UsageException($"{named}: not a PKCS#12 (.pfx) file ({e.Message.TrimEnd('.')}).");
        }
        if (!certificate.HasPrivateKey)
            throw new UsageException($"{named}: holds the certificate '{certificate.Subject}' without its private key; give the NAME.pfx of `fedavg certs issue`.");
        CheckValidity(certificate, named);
        return certificate;
    }

    static void CheckValidity(X509Certificate2 cert, string what)
    {
        var now = DateTime.Now;
        if (now > cert.NotAfter) throw new UsageException($"{what}: the certificate '{cert.Subject}' expired on {cert.NotAfter:yyyy-MM-dd HH:mm}; issue a new one.");
        if (now < cert.NotBefore) throw new UsageException($"{what}: the certificate '{cert.Subject}' is not valid before {cert.NotBefore:yyyy-MM-dd HH:mm} (check the clock).");
    }

    /// <summary>Null if <paramref name="peer"/> chains to the federation's CA and is valid now; else why not.</summary>
    public string? Check(X509Certificate2 peer)
    {
        if (RevokedWhy(peer) is { } revokedWhy) return revokedWhy;
        using var chain = ChainTo(Ca, ignoreTime: false);
        bool built = chain.Build(peer);
        if (built && chain.ChainElements.Count >= 2 && EndsAt(chain, Ca)) return null;
        var status = chain.ChainStatus.Select(s => s.Status).Where(s => s != X509ChainStatusFlags.NoError).Distinct().ToList();
        if (status.Contains(X509ChainStatusFlags.NotTimeValid)) return $"the certificate '{peer.Subject}' is expired or not yet valid";
        if (status.Contains(X509ChainStatusFlags.PartialChain) || status.Contains(X509ChainStatusFlags.UntrustedRoot) || !built)
            return $"the certificate '{peer.Subject}' (issuer '{peer.Issuer}') is not signed by the federation's CA";
        return $"the certificate '{peer.Subject}' does not verify ({string.Join(", ", status)})";
    }

    /// <summary>Null unless <paramref name="peer"/> is on the revoked list as it stands now; then why. Cheap: a set lookup.</summary>
    public string? RevokedWhy(X509Certificate peer)
    {
        string serial = peer.GetSerialNumberString();
        return Revoked.Contains(serial) ? $"the certificate '{peer.Subject}' (serial {serial}) is revoked ({RevokedPath})" : null;
    }

    /// <summary>True if <paramref name="certificate"/> was signed by <paramref name="ca"/> (whatever its validity period).</summary>
    public static bool ChainsTo(X509Certificate2 certificate, X509Certificate2 ca)
    {
        using var chain = ChainTo(ca, ignoreTime: true);
        return chain.Build(certificate) && EndsAt(chain, ca);
    }

    /// <summary>A chain whose only root is <paramref name="ca"/>: the machine's store, downloads and CRLs play no part.</summary>
    static X509Chain ChainTo(X509Certificate2 ca, bool ignoreTime)
    {
        var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        if (ignoreTime) chain.ChainPolicy.VerificationFlags = X509VerificationFlags.IgnoreNotTimeValid;
        return chain;
    }

    static bool EndsAt(X509Chain chain, X509Certificate2 ca) =>
        chain.ChainElements[^1].Certificate.RawDataMemory.Span.SequenceEqual(ca.RawDataMemory.Span);

    /// <summary>The validator Akka runs on every handshake; <paramref name="peer"/> is the remote address Akka knows.</summary>
    public bool Validate(X509Certificate2? certificate, X509Chain? chain, string peer, SslPolicyErrors errors, ILoggingAdapter log)
    {
        string? why = certificate is null ? "it presented no certificate" : Check(certificate);
        if (why is null) return true;
        string line = $"TLS: refused the connection with {peer}: {why}" +
                      (certificate is null ? "" : $" (thumbprint {certificate.Thumbprint})");
        log.Warning(line);
        OnRefused?.Invoke(line);
        return false;
    }

    /// <summary>What Akka's DotNetty transport takes: this node's certificate, mutual authentication, our validator.</summary>
    public DotNettySslSetup Setup() =>
        new(Certificate, suppressValidation: false, requireMutualAuthentication: true, validateCertificateHostname: false, Validate);

    public string Describe() =>
        $"TLS with {Certificate.Subject} (expires {Certificate.NotAfter:yyyy-MM-dd}), peers verified against {Ca.Subject}";

    /// <summary>Loopback addresses and "localhost": only this machine can connect.</summary>
    public static bool IsLoopback(string host)
    {
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)) return true;
        if (IPAddress.TryParse(host, out var ip)) return IPAddress.IsLoopback(ip);
        try
        {
            var addresses = Dns.GetHostAddresses(host);
            return addresses.Length > 0 && addresses.All(IPAddress.IsLoopback);
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        Certificate.Dispose();
        Ca.Dispose();
    }
}
