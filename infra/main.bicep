// The whole deployment, as `azd up` (or `azd provision`) runs it: a resource group with resources.bicep (storage,
// identity and its roles, monitoring, Key Vault, the Flex Consumption plan) and app.bicep (the Function App).
// appSettings below is the one list of the app's settings; omittedSettings names each setting the app declares
// (shared/settings.py) that this template deliberately leaves unset, with the reason. tests/test_infra.py checks both.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('The azd environment name: names the resource group and, with the subscription and region, every resource.')
param environmentName string

@minLength(1)
@description('Region of every resource; one that offers Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({ azd: { type: 'location' } })
param location string

// ---- Twilio -------------------------------------------------------------------------------------------------
@description('TWILIO_ACCOUNT_SID: the account (AC...).')
param twilioAccountSid string
@secure()
@minLength(1)
@description('TWILIO_AUTH_TOKEN: kept in Key Vault; it also validates the webhooks\' signatures.')
param twilioAuthToken string
@description('TWILIO_API_KEY_SID (SK...): optional; with TWILIO_API_KEY_SECRET, REST uses the key instead of the auth token. Also needed for in-app calling.')
param twilioApiKeySid string = ''
@secure()
@description('TWILIO_API_KEY_SECRET: optional; kept in Key Vault.')
param twilioApiKeySecret string = ''
@description('TWILIO_PHONE_NUMBER: the number (E.164) the app sends from and that the wiring hook points at the app.')
param twilioPhoneNumber string
param twilioMessagingServiceSid string = ''
param twilioHttpTimeoutSeconds string = ''
@description('TWILIO_TWIML_APP_SID: the TwiML App for in-app calling; the postprovision hook creates it and stores its SID here.')
param twilioTwimlAppSid string = ''
param twilioPushCredentialSid string = ''
param voiceTokenTtlSeconds string = ''

// ---- sign-in --------------------------------------------------------------------------------------------------
@description('AUTH_ISSUER: the OpenID issuer of your users\' Bearer tokens (Entra ID, Auth0, Firebase...).')
param authIssuer string = ''
param authAudience string = ''
param authJwksUrl string = ''
@description('Deploy although no sign-in is configured: every caller is then `anonymous` and shares the quotas. Only for trials.')
param allowAnonymousCallers bool = false

// ---- quotas (0: unlimited) ------------------------------------------------------------------------------------
@description('QUOTA_SMS_PER_DAY: the whole app\'s SMS per UTC day; finite by default so a leaked key cannot run up an unbounded bill.')
@minValue(0)
param quotaSmsPerDay int = 200
@description('QUOTA_CALLS_PER_DAY: the whole app\'s calls per UTC day; finite by default.')
@minValue(0)
param quotaCallsPerDay int = 50
@minValue(0)
param quotaSmsPerUserPerDay int = 0
@minValue(0)
param quotaCallsPerUserPerDay int = 0
@minValue(0)
param quotaPerDestinationPerHour int = 0
param idempotencyTtlHours string = ''

// ---- behaviour (empty: the app's default) ------------------------------------------------------------------------
param publicBaseUrl string = ''
param voiceGreeting string = ''
param voiceName string = ''
param voiceLanguage string = ''
param smsAutoReply string = ''
param defaultRegion string = ''
param allowedDestinationPrefixes string = ''
param allowedDestinationCountries string = ''
param blockedNumbers string = ''
param inboundCallFlow string = ''
param forwardTo string = ''
param forwardTimeoutSeconds string = ''
param callMenu string = ''
param voicemailGreeting string = ''
param voicemailMaxSeconds string = ''
param voicemailNotifySms string = ''
param callMaxMinutes string = ''
param broadcastSenders string = ''
param broadcastSegmentsPerSecond string = ''
param azureSdkLogLevel string = ''

// ---- scale ----------------------------------------------------------------------------------------------------
@description('Most instances Flex Consumption may scale out to (40-1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100
@description('Memory of each instance.')
@allowed([2048, 4096])
param instanceMemoryMB int = 2048
@description('Always-ready instances for the HTTP functions (no cold start; billed while idle, see README). 0: none.')
@minValue(0)
param alwaysReadyHttpInstances int = 0

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }

// Fails the deployment (json() of text that is not JSON) unless sign-in is configured or anonymous callers are
// explicitly allowed: an unconfigured app would let anyone send on the account's behalf.
var signIn = empty(authIssuer) ? (allowAnonymousCallers ? 'anonymous' : json('Refusing to deploy without sign-in: set AUTH_ISSUER and AUTH_AUDIENCE, or ALLOW_ANONYMOUS_CALLERS=true for a trial.')) : 'bearer'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module resources 'resources.bicep' = {
  name: 'resources'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    twilioAuthToken: twilioAuthToken
    twilioApiKeySecret: twilioApiKeySecret
  }
}

var keyVaultReference = '@Microsoft.KeyVault(SecretUri=${resources.outputs.keyVaultUri}secrets/'

// Every app setting the template sets. Empty values mean "the app's default" (the app treats blank as unset).
var appSettings = union({
  AzureWebJobsStorage__accountName: resources.outputs.storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: resources.outputs.identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: resources.outputs.applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${resources.outputs.identityClientId};Authorization=AAD'
  TWILIO_ACCOUNT_SID: twilioAccountSid
  TWILIO_AUTH_TOKEN: '${keyVaultReference}${resources.outputs.authTokenSecretName})'
  TWILIO_API_KEY_SID: twilioApiKeySid
  TWILIO_PHONE_NUMBER: twilioPhoneNumber
  TWILIO_MESSAGING_SERVICE_SID: twilioMessagingServiceSid
  TWILIO_HTTP_TIMEOUT_SECONDS: twilioHttpTimeoutSeconds
  TWILIO_TWIML_APP_SID: twilioTwimlAppSid
  TWILIO_PUSH_CREDENTIAL_SID: twilioPushCredentialSid
  VOICE_TOKEN_TTL_SECONDS: voiceTokenTtlSeconds
  AUTH_ISSUER: authIssuer
  AUTH_AUDIENCE: authAudience
  AUTH_JWKS_URL: authJwksUrl
  QUOTA_SMS_PER_DAY: string(quotaSmsPerDay)
  QUOTA_CALLS_PER_DAY: string(quotaCallsPerDay)
  QUOTA_SMS_PER_USER_PER_DAY: string(quotaSmsPerUserPerDay)
  QUOTA_CALLS_PER_USER_PER_DAY: string(quotaCallsPerUserPerDay)
  QUOTA_PER_DESTINATION_PER_HOUR: string(quotaPerDestinationPerHour)
  IDEMPOTENCY_TTL_HOURS: idempotencyTtlHours
  PUBLIC_BASE_URL: publicBaseUrl
  VOICE_GREETING: voiceGreeting
  VOICE_NAME: voiceName
  VOICE_LANGUAGE: voiceLanguage
  SMS_AUTO_REPLY: smsAutoReply
  DEFAULT_REGION: defaultRegion
  ALLOWED_DESTINATION_PREFIXES: allowedDestinationPrefixes
  ALLOWED_DESTINATION_COUNTRIES: allowedDestinationCountries
  BLOCKED_NUMBERS: blockedNumbers
  INBOUND_CALL_FLOW: inboundCallFlow
  FORWARD_TO: forwardTo
  FORWARD_TIMEOUT_SECONDS: forwardTimeoutSeconds
  CALL_MENU: callMenu
  VOICEMAIL_GREETING: voicemailGreeting
  VOICEMAIL_MAX_SECONDS: voicemailMaxSeconds
  VOICEMAIL_NOTIFY_SMS: voicemailNotifySms
  CALL_MAX_MINUTES: callMaxMinutes
  BROADCAST_SENDERS: broadcastSenders
  BROADCAST_SEGMENTS_PER_SECOND: broadcastSegmentsPerSecond
  AZURE_SDK_LOG_LEVEL: azureSdkLogLevel
}, empty(twilioApiKeySecret) ? {} : {
  TWILIO_API_KEY_SECRET: '${keyVaultReference}${resources.outputs.apiKeySecretName})'
})

// Settings the app declares that this template leaves unset on purpose (tests/test_infra.py reads the reasons).
var omittedSettings = {
  AzureWebJobsStorage: 'a connection string needs shared keys, which the storage account refuses: identity-based __accountName instead'
  AzureWebJobsStorage__tableServiceUri: 'the app and the host derive it from AzureWebJobsStorage__accountName'
  TWILIO_API_BASE_URL: 'only for the local sandbox and contract mocks: in Azure the app talks to api.twilio.com'
  WEBSITE_HOSTNAME: 'set by the platform'
  AUTH_EASY_AUTH: 'App Service Authentication is not supported on Flex Consumption, and callers are not blocked while it is enabled there (Microsoft\'s Flex Consumption considerations): a forged X-MS-CLIENT-PRINCIPAL-ID must never count, so sign-in is AUTH_ISSUER\'s Bearer tokens'
  WEBSITE_AUTH_ENABLED: 'set by the platform, and only read with AUTH_EASY_AUTH'
}

module app 'app.bicep' = {
  name: 'app'
  scope: rg
  params: {
    name: 'func-${resourceToken}'
    location: location
    tags: union(tags, { 'azd-service-name': 'api', 'sign-in': signIn })
    planId: resources.outputs.planId
    identityId: resources.outputs.identityId
    deploymentContainerUrl: resources.outputs.deploymentContainerUrl
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
    appSettings: appSettings
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.name
output AZURE_KEY_VAULT_NAME string = resources.outputs.keyVaultName
output SERVICE_API_BASE_URL string = app.outputs.baseUrl

