using System.Text.Json;
using FedAvg.Actors.Messages;
using FedAvg.Core.Runtime;
using FedAvg.Tests.Shared;

namespace FedAvg.Cli.Tests;

/// <summary>
/// What the process tests of `fedavg server` and `fedavg node` share: the processes they start (all killed in
/// Dispose, whatever the test did), the run's settings, certificates made by `fedavg certs` for tests that run with
/// TLS, and reading a run directory back.
/// </summary>
public abstract class FederationProcessTest : IDisposable
{
    protected static readonly TimeSpan Start = TimeSpan.FromSeconds(90);
    protected const string Password = "pw-Zq8!federation-secret";
    readonly List<FedavgProcess> processes = [];
    /// <summary>This test's files: CAs, certificate bundles, the password file.</summary>
    protected readonly string root = TestData.TempDir();
    string? federationCa;

    /// <summary>The CA directory that <see cref="Transport"/> issues this test's certificates from.</summary>
    protected string FederationCa => federationCa ??= MakeCa("federation").CaDir;

    protected FedavgProcess Launch(string name, params string[] args) => Launch(name, new Dictionary<string, string>(), args);

    protected FedavgProcess Launch(string name, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var p = new FedavgProcess(name, environment, args);
        processes.Add(p);
        return p;
    }

    public virtual void Dispose()
    {
        // every process is killed even if killing one throws: one left running holds its ports and CPU for the next tests
        var failures = new List<Exception>();
        foreach (var p in processes)
        {
            try
            {
                p.Dispose();
            }
            catch (Exception e)
            {
                failures.Add(e);
            }
        }
        GC.SuppressFinalize(this);
        if (failures.Count > 0) throw new AggregateException("killing the test's fedavg processes failed", failures);
    }

    /// <summary>The run's settings, the same for `simulate` and `server`.</summary>
    protected static string[] Run(string outDir, int rounds = 3, string partition = "iid:300", params string[] extra) =>
    [
        "--data-dir", TestData.DataDir, "--out", outDir, "--clients", "4", "--partition", partition, "--rounds", rounds.ToString(),
        "--local-epochs", "1", "--lr", "0.05", "--momentum", "0.5", "--trainers", "1", "--seed", "5", .. extra,
    ];

    /// <summary>A plaintext `fedavg server` on loopback with the run's settings; the port it listens on (port 0: the OS picks one).</summary>
    protected async Task<(FedavgProcess Server, int Port)> StartServer(string outDir, int rounds = 3, string partition = "iid:300", int port = 0,
        params string[] extra)
    {
        var server = Launch("server", ["server", .. Run(outDir, rounds, partition), "--port", port.ToString(), .. extra]);
        var listening = await server.WaitForLine(@"listening at akka\.tcp://fedavg@127\.0\.0\.1:(\d+)", Start);
        return (server, int.Parse(listening.Groups[1].Value));
    }

    protected FedavgProcess StartNode(string name, int port, string clients, params string[] extra) =>
        Launch(name, ["node", "--join", $"127.0.0.1:{port}", "--clients", clients, "--trainers", "1", "--node-id", name,
            "--data-dir", TestData.DataDir, .. extra]);

    /// <summary>`fedavg` run in this process: exit code, standard error, standard output.</summary>
    protected static (int Code, string Error, string Output) Fedavg(params string[] args)
    {
        var error = new StringWriter();
        var output = new StringWriter();
        int code = FedAvgCommand.Run(args, output, error);
        return (code, error.ToString(), output.ToString());
    }

    /// <summary>A CA in ROOT/NAME-ca and a password file; `fedavg certs init`, in this process.</summary>
    protected (string CaDir, string PasswordFile) MakeCa(string name)
    {
        string passwordFile = Path.Combine(root, "password.txt");
        if (!File.Exists(passwordFile)) File.WriteAllText(passwordFile, Password + "\n");
        string dir = Path.Combine(root, name + "-ca");
        var (code, error, _) = Fedavg("certs", "init", "--out", dir, "--name", name);
        Assert.True(code == 0, error);
        return (dir, passwordFile);
    }

    /// <summary>A node bundle ROOT/NODE: NODE.pfx (protected by the password file), NODE.crt, ca.crt; `fedavg certs issue`.</summary>
    protected string Issue(string caDir, string node, string role = "client")
    {
        string dir = Path.Combine(root, node);
        var (code, error, _) = Fedavg("certs", "issue", node, "--ca", caDir, "--out", dir, "--role", role, "--password-file", Path.Combine(root, "password.txt"));
        Assert.True(code == 0, error);
        return dir;
    }

    /// <summary>The flags that give a process the bundle <paramref name="bundle"/>: --tls-cert, --tls-ca, --tls-password-file.</summary>
    protected string[] Tls(string bundle) =>
        ["--tls-cert", Path.Combine(bundle, Path.GetFileName(bundle) + ".pfx"), "--tls-ca", Path.Combine(bundle, "ca.crt"), "--tls-password-file", Path.Combine(root, "password.txt")];

    /// <summary>
    /// The transport flags of process <paramref name="name"/>: none in plaintext; with TLS, a bundle for it from one CA
    /// per test (made on first use), issued for <paramref name="role"/> once and given again if asked again.
    /// </summary>
    protected string[] Transport(bool tls, string name, string role = "client")
    {
        if (!tls) return [];
        string bundle = Path.Combine(root, name);
        return Tls(Directory.Exists(bundle) ? bundle : Issue(FederationCa, name, role));
    }

    /// <summary>The address protocol the processes print: akka.ssl.tcp with TLS.</summary>
    protected static string Protocol(bool tls) => tls ? "akka.ssl.tcp" : "akka.tcp";

    protected static float[] FinalWeights(string runDir) => Checkpoint.Load(Path.Combine(runDir, Checkpoint.FileName)).Weights;

    protected static List<RoundMetrics> Rounds(string runDir) =>
        File.ReadAllLines(Path.Combine(runDir, "rounds.jsonl")).Where(l => l.Length > 0).Select(l => JsonSerializer.Deserialize<RoundMetrics>(l)!).ToList();
}
