using FedAvg.Cli;
using FedAvg.Actors.Testing;
using FedAvg.Tests.Shared;

namespace FedAvg.Cli.Tests;

/// <summary>
/// `fedavg.faults` given to a real `fedavg node` process: the faults fire on the node, and the server's run directory
/// (another process) records them beside the rejections they caused. Every process is killed in Dispose.
/// </summary>
[Collection("processes")]
public sealed class FaultProcessTests : FederationProcessTest
{
    [Fact]
    public async Task Faults_injected_on_a_node_process_appear_with_their_rejections_in_the_servers_rounds_csv()
    {
        string root = TestData.TempDir();
        string dir = Path.Combine(root, "server"), faults = Path.Combine(root, "faults.conf");
        File.WriteAllText(faults, """
            fedavg.faults = [ { behaviour = nan, clients = [1] }, { behaviour = sign-flip, clients = [0], from-round = 2 } ]
            """);
        var (server, port) = await StartServer(dir, rounds: 3, extra: ["--start-clients", "4"]);
        var node = StartNode("node-a", port, "0-3", "--config", faults);

        Assert.Equal(0, await server.WaitForExit(TimeSpan.FromMinutes(3)));
        Assert.Equal(0, await node.WaitForExit(TimeSpan.FromSeconds(60)));
        Assert.Contains("round 2: injected fault sign-flip on client-000", node.Output); // they fired on the node

        // every completed round's record (rounds.jsonl and rounds.csv) is there and valid, and the checkpoint is round 3's
        CompletedRounds.VerifyRunDirectory(dir, 3);
        const string nan = "client-001: nan", rejected = "client-001: non-finite weights (NaN or infinity)";
        var csv = File.ReadAllLines(Path.Combine(dir, "rounds.csv"));
        Assert.EndsWith(",faults,rejected", csv[0]);
        Assert.StartsWith("1,4,3,1,1,", csv[1]);
        Assert.EndsWith($",{nan},{rejected}", csv[1]);
        foreach (var line in csv[2..])
        {
            Assert.Matches(@"^[23],4,3,1,1,", line);
            Assert.EndsWith($",client-000: sign-flip; {nan},{rejected}", line);
        }
        Assert.Equal([1, 2, 2], Rounds(dir).Select(r => r.FaultsOrEmpty.Count));
    }

    [Fact]
    public async Task A_run_that_fails_on_the_server_ends_its_nodes_with_the_same_exit_code_and_reason()
    {
        // every client of the one node sends NaN: round 1 has no update to aggregate, and the run fails
        string root = TestData.TempDir();
        string dir = Path.Combine(root, "server"), faults = Path.Combine(root, "faults.conf");
        File.WriteAllText(faults, "fedavg.faults = [ { behaviour = nan } ]");
        var (server, port) = await StartServer(dir, rounds: 3, extra: ["--start-clients", "2", "--round-attempts", "1"]);
        var node = StartNode("node-a", port, "0-1", "--config", faults);

        Assert.Equal(ExitCodes.RunFailed, await server.WaitForExit(TimeSpan.FromMinutes(3)));
        // before, the node said "done" and exited 0, as if the run had completed
        Assert.Equal(ExitCodes.RunFailed, await node.WaitForExit(TimeSpan.FromSeconds(60)));
        await node.WaitForLine("^fedavg: the run failed on the server: ", TimeSpan.FromSeconds(1));
    }
}
