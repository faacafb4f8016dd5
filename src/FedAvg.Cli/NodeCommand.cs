using System.CommandLine;
using System.Globalization;
using FedAvg.Actors.Hosting;
using FedAvg.Actors.Messages;
using FedAvg.Core;
using FedAvg.Core.Native;
using FedAvg.Core.Runtime;
using FedAvg.Core.Training;

namespace FedAvg.Cli;

/// <summary>`fedavg node`: joins a `fedavg server` and hosts client actors, on the run's shards or on its own data.</summary>
public static class NodeCommand
{
    public static Command Create()
    {
        var join = new Option<string?>("--join") { Description = "The server to join, HOST:PORT (the server's --hostname and --port; $FEDAVG_JOIN); with standby servers, HOST:PORT,HOST:PORT… (the server first)." };
        var clients = new Option<string?>("--clients") { Description = "Research mode: the run's client ids this node hosts, e.g. 0-49 or 7." };
        var ownData = new Option<string?>("--own-data") { Description = "Own-data mode: a folder with this node's IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte), one client." };
        var nodeId = new Option<string?>("--node-id") { Description = "This node's name in the federation (default: host name and clients; with TLS, the name of its certificate, which it must be)." };
        var port = new Option<int?>("--port") { Description = "Port this node listens on (default $FEDAVG_PORT, else 0: any free port)." };
        var hostname = new Option<string?>("--hostname") { Description = "The address the server and other nodes use to reach this node (default $FEDAVG_HOSTNAME, else 127.0.0.1)." };
        var bind = new Option<string?>("--bind-hostname") { Description = "The interface to listen on (default $FEDAVG_BIND_HOSTNAME, else --hostname; 0.0.0.0 for all)." };
        var trainers = new Option<int?>("--trainers") { Description = "P: trainings that run at once on this node (default: one per core)." };
        var threads = new Option<int>("--threads-per-trainer") { Description = "T: libtorch intra-op threads of each trainer.", DefaultValueFactory = _ => 1 };
        var model = new Option<string?>("--model") { Description = "The model this node is built for (default: the run's); the server refuses a node whose model differs." };
        var joinTimeout = new Option<string?>("--join-timeout") { Description = "How long to wait for the server, e.g. 30s (fedavg.cluster.join-timeout)." };
        var federation = new Option<string?>("--federation") { Description = "The federation to join (fedavg.cluster.federation)." };
        var config = new Option<string?>("--config") { Description = "A HOCON file layered over hocon/cluster.conf (flags override both)." };
        var dataDir = CommonOptions.DataDir();
        var tlsOptions = new TlsOptions();

        var command = new Command("node", "Join a fedavg server and train its clients on this machine's data.");
        foreach (var o in new Option[] { join, clients, ownData, nodeId, port, hostname, bind, trainers, threads, model, joinTimeout, federation, config, dataDir }.Concat(tlsOptions.All))
            command.Options.Add(o);

        command.SetAction((parse, cancel) =>
        {
            NativeTuning.Apply(); // this host's process-wide native settings, before any model exists
            string target = parse.GetValue(join) ?? ClusterEnvironment.Text("FEDAVG_JOIN", "")
                ?? throw new UsageException("--join HOST:PORT is required: the server to join.");
            if (target.Length == 0) throw new UsageException("--join HOST:PORT (or $FEDAVG_JOIN) is required: the server to join.");
            var targets = target.Split(',', StringSplitOptions.TrimEntries).Select(t => Endpoint.ParseHostPort(t, "--join")).ToList();
            if (targets.Distinct().Count() != targets.Count) throw new UsageException($"--join '{target}': an address is given twice.");
            var (host, serverPort) = targets[0];
            ClientRange? range = parse.GetValue(clients) is { } text ? ParseRange(text) : null;
            string? own = parse.GetValue(ownData);
            if (range is null == own is null) throw new UsageException("give either --clients RANGE (research mode) or --own-data DIR (own-data mode).");
            if (parse.GetValue(model) is { } m) FedAvg.Core.Models.ModelZoo.Validate(m);
            if (own is not null) ClusterNode.OwnDataFiles(own); // before the banner, which names the node after the directory
            var overrides = new List<string>();
            var given = ClusterEnvironment.Given(); // what an error about a fedavg.cluster key names: the flag, the variable, or the key
            if (parse.GetValue(joinTimeout) is { } t) overrides.Add(CommonOptions.ClusterFlag(given, "join-timeout", joinTimeout.Name, t));
            if (parse.GetValue(federation) is { } f) overrides.Add(CommonOptions.ClusterFlag(given, "federation", federation.Name, f));
            overrides.AddRange(tlsOptions.Overrides(parse));
            HoconFiles.CheckFileAlone(["simulation.conf", "cluster.conf"], parse.GetValue(config), c => ClusterOptions.FromConfig(c));
            var layered = HoconFiles.Load(["simulation.conf", "cluster.conf"], parse.GetValue(config),
                string.Join("\n", [ClusterEnvironment.Overrides(), .. overrides])); // the environment, then flags
            var cluster = ClusterOptions.FromConfig(layered, given);
            var endpoint = new Endpoint(parse.GetValue(hostname) ?? ClusterEnvironment.Text("FEDAVG_HOSTNAME", "127.0.0.1"),
                parse.GetValue(bind) ?? Environment.GetEnvironmentVariable("FEDAVG_BIND_HOSTNAME"),
                parse.GetValue(port) ?? ClusterEnvironment.Port("FEDAVG_PORT", 0));
            endpoint.Validate();
            var tls = TlsOptions.Load(layered, endpoint, ClusterHosting.ClientRole, "node", tlsOptions.Given(parse));
            int p = parse.GetValue(trainers) ?? TrainerPool.DefaultShape(Environment.ProcessorCount).Trainers;
            TrainerPool.ValidateShape(p, parse.GetValue(threads), Environment.ProcessorCount, "--trainers", "--threads-per-trainer");
            // with TLS the node's id is its certificate's name, which the server checks (NodeIdentity)
            string id = tls is not null ? NodeIdentity.IdOf(tls, parse.GetValue(nodeId)) : parse.GetValue(nodeId) ?? (own is not null
                ? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(own)))
                : $"{Environment.MachineName}:{range}");
            var options = new NodeOptions(id, host, serverPort, range, own, parse.GetValue(dataDir)!, p, parse.GetValue(threads), parse.GetValue(model),
                AlsoJoin: targets.Skip(1).ToList());
            return Run(options, cluster, endpoint, layered, tls, cancel);
        });
        return command;
    }

    static async Task<int> Run(NodeOptions options, ClusterOptions cluster, Endpoint endpoint, Akka.Configuration.Config layered,
        TransportSecurity? tls, CancellationToken cancel)
    {
        Console.WriteLine($"fedavg node {options.NodeId}: clients {(object?)options.Clients ?? $"own data in {options.OwnDataDir}"}, " +
                          $"P={options.Trainers}×T={options.ThreadsPerTrainer}, joining {options.JoinText}");
        using var node = new ClusterNode
        {
            Tls = tls,
            OnUp = address => Console.WriteLine($"node: up at {address}"),
            OnEvent = text => Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{DateTime.Now:HH:mm:ss} node: {text}")),
        };
        var finished = await node.RunAsync(options, cluster, endpoint, layered, cancel);
        Console.WriteLine($"node: done ({finished.Reason}); peak RSS {ProcessMemory.PeakResidentBytes() / 1048576.0:F0} MB");
        if (finished.Completed) return ExitCodes.Success;
        // the server exits with RunFailed for this run, and so does each node: a script that waits for them sees it
        Console.Error.WriteLine($"fedavg: the run failed on the server: {finished.Reason}");
        return ExitCodes.RunFailed;
    }

    /// <summary>"0-49" or "7": inclusive client indices.</summary>
    public static ClientRange ParseRange(string text)
    {
        var parts = text.Split('-', 2, StringSplitOptions.TrimEntries);
        if (int.TryParse(parts[0], out int first) && (parts.Length == 1 ? (int?)first : int.TryParse(parts[1], out int l) ? l : null) is { } last
            && first >= 0 && last >= first)
            return new ClientRange(first, last);
        throw new UsageException($"--clients '{text}': expected a range of client indices FIRST-LAST (e.g. 0-49) or one index.");
    }
}
