using System.CommandLine;
using System.Text.Json;
using FedAvg.Core.Data;
using FedAvg.Core.Partitioning;
using FedAvg.Core.Runtime;

namespace FedAvg.Cli;

/// <summary>`fedavg partition`: writes the clients' index lists, so that other tools (the PyTorch reference) train on exactly the same shards.</summary>
public static class PartitionCommand
{
    public static Command Create()
    {
        var dataDir = CommonOptions.DataDir();
        var dataset = CommonOptions.Dataset();
        var partition = CommonOptions.Value("--partition", "iid-balanced:450", Partitioner.Names);
        var clients = CommonOptions.Value("--clients", 100, "How many clients.");
        var seed = CommonOptions.Value("--seed", 1, "Partition seed (the same as `fedavg simulate --seed`).");
        var output = new Option<string>("--out") { Description = "JSON file to write.", Required = true };
        var command = new Command("partition", "Export the per-client index lists of a partition as JSON.")
        {
            dataDir, dataset, partition, clients, seed, output,
        };
        command.SetAction(parse =>
        {
            var info = DatasetCatalog.Get(parse.GetValue(dataset)!);
            var partitioner = Partitioner.Parse(parse.GetValue(partition)!);
            string outPath = parse.GetValue(output)!;
            OutputPath.CheckFile(outPath, "--out");
            var store = new DatasetStore(parse.GetValue(dataDir)!);
            store.Verify(info);
            var labels = IdxFile.Read(store.PathOf(info, info.TrainLabels), 1).Data;
            var shards = partitioner.Split(labels, info.Classes, parse.GetValue(clients), parse.GetValue(seed));
            var json = JsonSerializer.Serialize(new
            {
                dataset = info.Name, partition = partitioner.Spec, clients = shards.Length, seed = parse.GetValue(seed), indices = shards,
            });
            try
            {
                AtomicFile.WriteAllText(outPath, json);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw OutputPath.WriteFailed(outPath, e);
            }
            Console.WriteLine($"{shards.Length} clients, {shards.Sum(s => s.Length)} samples → {outPath}");
            return ExitCodes.Success;
        });
        return command;
    }
}
